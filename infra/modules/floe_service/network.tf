# Floe's security group: HTTPS out to the AWS APIs, the operations port in
# from the Prometheus scrapers only.

resource "aws_security_group" "floe" {
  name        = "${var.name}-task"
  description = "Floe tasks: HTTPS to AWS APIs out, metrics port ${local.metrics_port} in from Prometheus"
  vpc_id      = var.vpc_id
}

# Every AWS API Floe calls (Kinesis, S3, Glue, DynamoDB, KMS, ECR, CloudWatch
# Logs) is HTTPS on 443. 0.0.0.0/0 reaches them through the subnets' NAT
# gateway; where the VPC has interface/gateway endpoints for all of them,
# narrow egress_cidr_blocks to the VPC's range. DNS goes to the VPC resolver,
# which security groups do not filter.
resource "aws_vpc_security_group_egress_rule" "https" {
  for_each = toset(var.egress_cidr_blocks)

  security_group_id = aws_security_group.floe.id
  description       = "HTTPS to AWS service endpoints"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "metrics" {
  for_each = toset(var.metrics_ingress_cidrs)

  security_group_id = aws_security_group.floe.id
  description       = "Prometheus scrapes of /metrics and /health"
  ip_protocol       = "tcp"
  from_port         = local.metrics_port
  to_port           = local.metrics_port
  cidr_ipv4         = each.value
}
