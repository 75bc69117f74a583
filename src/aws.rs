//! AWS plumbing shared by the Kinesis source, the Glue catalog, S3 storage
//! and the DynamoDB lease table: one configuration from the default chain, so
//! every client signs with the same credentials and region.
//!
//! Credentials come from the AWS SDK's default chain (environment, shared
//! profile, web identity, ECS task role, EC2 instance role) and are refreshed
//! before they expire. S3 goes through Iceberg's OpenDAL storage, which has a
//! signer of its own: it is handed the SDK's credentials, so S3 uses the same
//! chain as Kinesis and Glue.

use std::collections::HashMap;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_config::timeout::TimeoutConfig;
// Every AWS SDK crate re-exports the same smithy error types.
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use iceberg::io::{FileIO, FileIOBuilder, S3_ENDPOINT, S3_PATH_STYLE_ACCESS, S3_REGION};
use iceberg_storage_opendal::{
    AwsCredential, CustomAwsCredentialLoader, OpenDalStorageFactory, ProvideCredential,
};

/// The default AWS configuration: region and credentials from the
/// environment, profile, or the ECS or EC2 role; `AWS_ENDPOINT_URL` (or
/// `AWS_ENDPOINT_URL_<SERVICE>`) points clients elsewhere. Loaded once per
/// process, so the Kinesis, Glue and S3 clients share its credential cache.
pub async fn sdk_config() -> SdkConfig {
    static CONFIG: tokio::sync::OnceCell<SdkConfig> = tokio::sync::OnceCell::const_new();
    CONFIG
        .get_or_init(|| {
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .timeout_config(timeouts(FIRST_BYTE_TIMEOUT, ATTEMPT_TIMEOUT))
                .load()
        })
        .await
        .clone()
}

/// The SDK's connect timeout (its own default).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);
/// How long a call may wait for the first byte of its answer. Kinesis,
/// Glue and DynamoDB answer in well under a second, throttled or not.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one attempt of a call may take in all, its answer read (a
/// `GetRecords` answer is up to 10 MB).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(120);

/// The timeouts of every AWS SDK call. The SDK sets none but the connect
/// timeout, so a connection that died silently (dropped by a NAT, or a
/// server that stopped answering) held its caller forever: a shard reader,
/// the lease keeper, or the Kinesis coordinator's look at the table, whose
/// shards then stayed leased and unread. A call that times out fails as
/// transient ([`is_transient`]) and is tried again.
fn timeouts(first_byte: Duration, attempt: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(first_byte)
        .operation_attempt_timeout(attempt)
        .build()
}

/// The raw HTTP answer of every AWS SDK client (one type for all services).
pub use aws_sdk_kinesis::config::http::HttpResponse;

/// The service's error code (`ThrottlingException`...) of a failed call;
/// `None` when the call failed before the service answered.
pub fn error_code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    match e {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

/// Whether a failed call may succeed when tried again, whatever error code
/// came with it: it failed on the way (timeout, connection, unreadable
/// answer), or the service answered with a 5xx status (an overloaded or
/// crashing server, a proxy's HTML error page), which often carries no code
/// at all. Every AWS caller retries these with its usual backoff; S3 calls
/// go through OpenDAL, whose retry layer takes 5xx answers as temporary too.
pub fn is_transient<E>(e: &SdkError<E, HttpResponse>) -> bool {
    matches!(
        e,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    ) || e
        .raw_response()
        .is_some_and(|r| r.status().is_server_error())
}

/// How Floe reaches S3.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    /// Endpoint of an S3-compatible store (default: AWS, or
    /// `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which most
    /// S3-compatible stores need.
    pub path_style: bool,
}

/// A FileIO over S3 that signs with the SDK's credentials.
pub fn s3_file_io(sdk: &SdkConfig, settings: &S3Settings) -> FileIO {
    let mut props = HashMap::new();
    if let Some(region) = sdk.region() {
        props.insert(S3_REGION.to_string(), region.to_string());
    }
    if let Some(endpoint) = s3_endpoint(settings) {
        props.insert(S3_ENDPOINT.to_string(), endpoint);
    }
    props.insert(
        S3_PATH_STYLE_ACCESS.to_string(),
        settings.path_style.to_string(),
    );
    let factory = OpenDalStorageFactory::S3 {
        customized_credential_load: sdk
            .credentials_provider()
            .map(|p| CustomAwsCredentialLoader::new(SdkCredentials(p))),
    };
    FileIOBuilder::new(std::sync::Arc::new(factory))
        .with_props(props)
        .build()
}

/// An OpenDAL operator over one S3 bucket with the same endpoint, region,
/// addressing and credentials as [`s3_file_io`] (for listing a warehouse's
/// files, and reading the objects of an `s3://` input). Failed calls that
/// may succeed again (throttling such as 503 SlowDown, 5xx answers,
/// connection errors, and calls that hang: OpenDAL's default timeouts, 60 s
/// a call and 10 s a read) are retried with exponential backoff and jitter.
pub fn s3_operator(
    sdk: &SdkConfig,
    settings: &S3Settings,
    bucket: &str,
) -> Result<opendal::Operator, opendal::Error> {
    let mut builder = opendal::services::S3::default().bucket(bucket);
    if let Some(region) = sdk.region() {
        builder = builder.region(region.as_ref());
    }
    if let Some(endpoint) = s3_endpoint(settings) {
        builder = builder.endpoint(&endpoint);
    }
    if !settings.path_style {
        builder = builder.enable_virtual_host_style();
    }
    if let Some(provider) = sdk.credentials_provider() {
        builder = builder.credential_provider_chain(
            reqsign_core::ProvideCredentialChain::new().push(SdkCredentials(provider)),
        );
    }
    // The timeout inside the retries: a call that hangs is abandoned and
    // tried again, as the SDK's calls are.
    Ok(opendal::Operator::new(builder)?
        .layer(opendal::layers::TimeoutLayer::new())
        .layer(opendal::layers::RetryLayer::new().with_jitter())
        .finish())
}

/// The S3 endpoint: the setting, else `AWS_ENDPOINT_URL_S3`, else
/// `AWS_ENDPOINT_URL` (none: AWS).
fn s3_endpoint(settings: &S3Settings) -> Option<String> {
    settings
        .endpoint
        .clone()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok())
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
}

/// The SDK's credential chain, as OpenDAL's signer asks for credentials.
#[derive(Debug)]
struct SdkCredentials(SharedCredentialsProvider);

impl ProvideCredential for SdkCredentials {
    type Credential = AwsCredential;

    async fn provide_credential(
        &self,
        _: &reqsign_core::Context,
    ) -> reqsign_core::Result<Option<AwsCredential>> {
        let credentials = self.0.provide_credentials().await.map_err(|e| {
            reqsign_core::Error::unexpected(format!(
                "no AWS credentials from the default chain: {e}"
            ))
        })?;
        let expires_in = match credentials.expiry() {
            Some(t) => {
                let seconds = t
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                Some(reqsign_core::time::Timestamp::from_second(seconds)?)
            }
            None => None,
        };
        Ok(Some(AwsCredential {
            access_key_id: credentials.access_key_id().to_string(),
            secret_access_key: credentials.secret_access_key().to_string(),
            session_token: credentials.session_token().map(str::to_string),
            expires_in,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call to a server that takes the connection and never answers fails
    /// as transient once the first-byte timeout passes: it does not wait for
    /// ever, and its caller tries again.
    #[tokio::test]
    async fn a_call_to_a_server_that_never_answers_times_out_as_transient() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Takes every connection and keeps it open, silent.
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let config = aws_sdk_kinesis::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_sdk_kinesis::config::Region::new("us-east-1"))
            .endpoint_url(format!("http://{addr}"))
            .credentials_provider(aws_credential_types::Credentials::new(
                "id", "secret", None, None, "test",
            ))
            // An attempt may take far longer than the test waits: only the
            // first-byte timeout can end the call in time.
            .timeout_config(timeouts(
                Duration::from_millis(200),
                Duration::from_secs(600),
            ))
            .build();
        let client = aws_sdk_kinesis::Client::from_conf(config);
        let call = client.list_shards().stream_name("events").send();
        let answer = tokio::time::timeout(Duration::from_secs(60), call)
            .await
            .expect("the call still waits: no first-byte timeout");
        let e = answer.expect_err("a silent server gives no answer");
        assert!(
            matches!(&e, SdkError::DispatchFailure(f) if f.is_timeout()),
            "{e:?}"
        );
        assert!(is_transient(&e));
        silent.abort();
    }
}
