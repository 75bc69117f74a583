//! How one payload value is drawn ([`Kind`]), and the constant pools values
//! are drawn from, laid out by hand (dense tables read better than one item
//! a line; `mod.rs` keeps rustfmt off this file). Strings are JSON-escaped
//! string contents, written between quotes as they are.

use Kind::*;

/// How one payload value is drawn. String pools hold JSON-escaped contents.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    Word(&'static [&'static str]),
    Id(&'static str),
    Email,
    Text,
    Url,
    Ip,
    Count(u64),
    Signed,
    Big,
    Money,
    Ratio,
    Coord,
    Bool,
    Object(&'static [(&'static str, Kind)]),
    Numbers,
    Words(&'static [&'static str]),
}

pub(super) const TYPES: &[&str] = &["account", "auth", "cart", "email", "inventory", "order",
    "page", "payment", "search", "session", "subscription", "user"];
pub(super) const OBJECTS: &[&str] = &["item", "coupon", "card", "refund", "invoice", "password",
    "profile", "address", "token", "plan", "trial", "shipment", "link", "result", "filter",
    "message", "review", "device"];
pub(super) const VERBS: &[&str] = &["created", "updated", "deleted", "completed", "failed",
    "viewed", "added", "removed", "started", "ended", "sent", "opened", "clicked", "applied",
    "expired", "renewed", "cancelled", "requested", "verified"];
pub(super) const WORDS: &[&str] = &["alpha", "blue", "checkout", "delta", "express", "fresh",
    "gift", "home", "instant", "jacket", "kitchen", "lamp", "mobile", "night", "orange",
    "premium", "quick", "red", "summer", "travel", "ultra", "vintage", "winter", "yellow", "zen",
    "classic", "bundle"];
/// Unicode and escapes, mixed into 10% of free-text values.
pub(super) const SPECIAL: &[&str] = &["café", "naïve", "Zürich", "São Paulo", "日本語",
    "🎉 party", r#"say \"hello\""#, r#"C:\\temp\\file"#, r#"caf\u00e9"#, r#"line\nbreak"#,
    r#"tab\tseparated"#, "Ελληνικά"];
pub(super) const NAMES: &[&str] = &["anna", "bob", "chen", "dana", "eli", "fatima", "goran",
    "hana", "ivan", "jose"];
pub(super) const SURNAMES: &[&str] = &["smith", "mueller", "garcia", "tanaka", "nowak",
    "rossi", "silva", "kim", "dubois", "okafor"];
pub(super) const DOMAINS: &[&str] = &["example.com", "mail.test", "shop.example", "acme.io",
    "corp.test"];
const COUNTRIES: &[&str] = &["US", "DE", "FR", "BR", "JP", "IN", "GB", "CA", "ES", "NL"];
const CURRENCIES: &[&str] = &["USD", "EUR", "BRL", "JPY", "GBP"];
const STATUSES: &[&str] = &["pending", "active", "succeeded", "failed", "refunded", "on_hold"];
const PLANS: &[&str] = &["free", "starter", "pro", "business", "enterprise"];
const LOCALES: &[&str] = &["en-US", "de-DE", "fr-FR", "pt-BR", "ja-JP"];
const CHANNELS: &[&str] = &["web", "ios", "android", "api", "email", "partner"];
const CITIES: &[&str] = &["Berlin", "Zürich", "São Paulo", "Kraków", "東京", "Austin", "Lyon"];
const OSES: &[&str] = &["ios", "android", "windows", "macos", "linux"];
const VERSIONS: &[&str] = &["1.0.3", "2.4.1", "17.2", "14", "10.0.19045"];
const SOURCES: &[&str] = &["google", "newsletter", "facebook", "direct", "bing"];
const TAGS: &[&str] = &["new", "sale", "vip", "beta", "gift", "bulk", "b2b", "returning"];
const DEVICE: &[(&str, Kind)] = &[("os", Word(OSES)), ("os_version", Word(VERSIONS)),
    ("mobile", Bool), ("screen_width", Count(3840))];
const ADDRESS: &[(&str, Kind)] = &[("city", Word(CITIES)), ("postal_code", Count(99_999)),
    ("country", Word(COUNTRIES))];
const GEO: &[(&str, Kind)] = &[("lat", Coord), ("lon", Coord)];
const UTM: &[(&str, Kind)] = &[("source", Word(SOURCES)), ("medium", Word(CHANNELS)),
    ("campaign", Word(WORDS))];
const META: &[(&str, Kind)] = &[("trace_id", Id("trc")), ("schema_version", Count(12)),
    ("debug", Bool)];
/// Payload fields. A field keeps its kind across all event names, as in
/// real producers, so a column never changes type between event names.
pub(super) const FIELDS: &[(&str, Kind)] = &[
    ("user_id", Id("usr")), ("session_id", Id("ses")), ("order_id", Id("ord")),
    ("product_id", Id("prd")), ("request_id", Id("req")), ("email", Email),
    ("country", Word(COUNTRIES)), ("currency", Word(CURRENCIES)), ("status", Word(STATUSES)),
    ("plan", Word(PLANS)), ("locale", Word(LOCALES)), ("channel", Word(CHANNELS)),
    ("url", Url), ("referrer", Url), ("ip_address", Ip), ("comment", Text),
    ("search_query", Text), ("display_name", Text), ("quantity", Count(20)),
    ("item_count", Count(50)), ("retry_count", Count(5)), ("duration_ms", Count(600_000)),
    ("amount_cents", Count(10_000_000)), ("balance_delta", Signed), ("score_delta", Signed),
    ("bytes_transferred", Big), ("sequence_number", Big), ("price", Money),
    ("discount", Money), ("tax_rate", Ratio), ("conversion_rate", Ratio), ("is_test", Bool),
    ("success", Bool), ("first_visit", Bool), ("device", Object(DEVICE)),
    ("shipping_address", Object(ADDRESS)), ("geo", Object(GEO)), ("utm", Object(UTM)),
    ("metadata", Object(META)), ("tags", Words(TAGS)), ("related_ids", Words(WORDS)),
    ("scores", Numbers), ("line_item_quantities", Numbers),
];
pub(super) const GARBAGE: &[&str] = &["this is not json",
    "<html><body>502 Bad Gateway</body></html>", "{event_uuid: 'abc', event_name: 'x'}",
    "event_uuid=1;event_name=account:created"];
pub(super) const BAD_UTF8: &[&[u8]] = &[b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80"];
pub(super) const OUT_OF_RANGE: &[&[u8]] = &[b"946684799", b"12", b"4102444800"];
