//! Route 53 in the AWS emulator, for the scenarios with `spec.dns`: a hosted zone of their
//! own, and its record sets as lines to compare.

use halo::aws::{Aws, AwsConfig};

/// halo's AWS clients (endpoints from the environment: the emulator's) and a fresh hosted zone
/// for namespace `ns`: (aws, its Route 53 client, zone id, zone name).
pub async fn emulator_with_zone(
    ns: &str,
) -> anyhow::Result<(Aws, aws_sdk_route53::Client, String, String)> {
    let aws = Aws::new(AwsConfig::default());
    let r53 = aws.route53().await.client().clone();
    let (zone_id, zone) = hosted_zone(&r53, ns).await?;
    Ok((aws, r53, zone_id, zone))
}

/// A fresh public hosted zone `<ns>-<millis>.example.com` in the emulator: (id, name).
pub async fn hosted_zone(
    r53: &aws_sdk_route53::Client,
    ns: &str,
) -> anyhow::Result<(String, String)> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let zone = format!("{ns}-{stamp}.example.com");
    let created = r53
        .create_hosted_zone()
        .name(format!("{zone}."))
        .caller_reference(format!("{zone}-e2e"))
        .send()
        .await?;
    let zone_id = created
        .hosted_zone()
        .map(|z| z.id().trim_start_matches("/hostedzone/").to_string())
        .ok_or_else(|| anyhow::anyhow!("CreateHostedZone named no zone"))?;
    Ok((zone_id, zone))
}

/// The record sets of a hosted zone in the emulator, except NS and SOA, as
/// `name type set-identifier failover target health-check`, sorted.
pub async fn zone_records(
    r53: &aws_sdk_route53::Client,
    zone_id: &str,
) -> anyhow::Result<Vec<String>> {
    let out = r53
        .list_resource_record_sets()
        .hosted_zone_id(zone_id)
        .max_items(300)
        .send()
        .await?;
    let mut lines: Vec<String> = out
        .resource_record_sets()
        .iter()
        .filter(|r| !matches!(r.r#type().as_str(), "NS" | "SOA"))
        .map(|r| {
            let target = match r.alias_target() {
                Some(a) => format!("alias={}:{}", a.hosted_zone_id(), a.dns_name()),
                None => r
                    .resource_records()
                    .iter()
                    .map(|v| v.value())
                    .collect::<Vec<_>>()
                    .join(","),
            };
            format!(
                "{} {} set={} failover={} {target} hc={}",
                r.name(),
                r.r#type().as_str(),
                r.set_identifier().unwrap_or("-"),
                r.failover().map(|f| f.as_str()).unwrap_or("-"),
                r.health_check_id().unwrap_or("-")
            )
        })
        .collect();
    lines.sort();
    Ok(lines)
}

/// The [`zone_records`] halo writes for `record` in us-east-1 as the PRIMARY of a failover
/// pair: its ownership TXT record (for app `<namespace>/<name>` = `resource`) and alias A and
/// AAAA records to the ALB `alb` (us-east-1's ALB zone) with health check `hc`.
pub fn primary_records(record: &str, resource: &str, alb: &str, hc: &str) -> Vec<String> {
    let alias = format!("alias=Z35SXDOTRQ7X7K:dualstack.{alb}.");
    vec![
        format!(
            "_halo-owner.{record}. TXT set=us-east-1 failover=PRIMARY \"heritage=halo,owner=us-east-1,resource={resource}\" hc=-"
        ),
        format!("{record}. A set=us-east-1 failover=PRIMARY {alias} hc={hc}"),
        format!("{record}. AAAA set=us-east-1 failover=PRIMARY {alias} hc={hc}"),
    ]
}
