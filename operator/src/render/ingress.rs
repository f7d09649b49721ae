//! The Ingress for the AWS Load Balancer Controller (`ingressClassName: alb`), only when
//! `spec.ingress` is set. The ALB health check mirrors the pods' readiness probe.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, ServiceBackendPort,
};

use super::PORT_NAME;
use crate::validate::ValidatedApp;

pub const INGRESS_CLASS: &str = "alb";
const PREFIX: &str = "alb.ingress.kubernetes.io/";

pub fn ingress(app: &ValidatedApp) -> Option<Ingress> {
    ingress_for(app, None)
}

/// The Ingress once the ALB has `load_balancer` as its hostname. Route 53 health checks reach
/// the ALB by that name and send it as `Host`, so with a Route 53 health check the Ingress
/// gets a second rule: that host, exactly the health path, to the app. Without it the ALB
/// answers them with its default 404 and the record would never be healthy.
pub fn ingress_for(app: &ValidatedApp, load_balancer: Option<&str>) -> Option<Ingress> {
    let spec = app.ingress.as_ref()?;
    let health = &app.health;
    let mut annotations = BTreeMap::new();
    let mut set = |key: &str, value: String| {
        annotations.insert(format!("{PREFIX}{key}"), value);
    };
    set("scheme", spec.scheme.as_str().into());
    set("target-type", "ip".into());
    set("healthcheck-protocol", "HTTP".into());
    set("healthcheck-port", "traffic-port".into());
    set("healthcheck-path", health.path.clone());
    set(
        "healthcheck-interval-seconds",
        health.period_seconds.to_string(),
    );
    set(
        "healthcheck-timeout-seconds",
        health.timeout_seconds.to_string(),
    );
    set(
        "healthy-threshold-count",
        health.healthy_threshold.to_string(),
    );
    set(
        "unhealthy-threshold-count",
        health.unhealthy_threshold.to_string(),
    );
    set("success-codes", "200-399".into());
    match &spec.certificate_arn {
        Some(arn) => {
            set("listen-ports", r#"[{"HTTP": 80}, {"HTTPS": 443}]"#.into());
            set("certificate-arn", arn.clone());
        }
        None => set("listen-ports", r#"[{"HTTP": 80}]"#.into()),
    }
    if spec.ssl_redirect {
        set("ssl-redirect", "443".into());
    }
    if let Some(group) = &spec.group_name {
        set("group.name", group.clone());
    }
    if let Some(waf) = &spec.waf_acl_arn {
        set("wafv2-acl-arn", waf.clone());
    }

    let mut metadata = app.owner.child_meta();
    metadata.annotations = Some(annotations);
    let rule = |host: &str, path: &str, path_type: &str| IngressRule {
        host: Some(host.to_string()),
        http: Some(HTTPIngressRuleValue {
            paths: vec![HTTPIngressPath {
                path: Some(path.into()),
                path_type: path_type.into(),
                backend: IngressBackend {
                    service: Some(IngressServiceBackend {
                        name: app.owner.name.clone(),
                        port: Some(ServiceBackendPort {
                            name: Some(PORT_NAME.into()),
                            number: None,
                        }),
                    }),
                    ..IngressBackend::default()
                },
            }],
        }),
    };
    let mut rules = vec![rule(&spec.host, "/", "Prefix")];
    let health_path = app
        .dns
        .as_ref()
        .and_then(|d| d.health_check.as_ref())
        .map(|h| h.path.as_str());
    if let (Some(path), Some(alb)) = (health_path, load_balancer.and_then(alb_host)) {
        rules.push(rule(&alb, path, "Exact"));
    }
    Some(Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: Some(INGRESS_CLASS.into()),
            rules: Some(rules),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    })
}

/// The ALB hostname as an Ingress rule host: lowercase, no trailing dot; `None` for an IP
/// address or anything else an Ingress host cannot be.
fn alb_host(load_balancer: &str) -> Option<String> {
    let host = load_balancer.trim_end_matches('.').to_ascii_lowercase();
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.contains('.')
        && host.parse::<std::net::IpAddr>().is_err()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    valid.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{FULL, SMALL, validated};

    /// Every ALB setting the user declared reaches the AWS Load Balancer Controller.
    #[test]
    fn annotations_configure_the_alb() {
        let ing = ingress(&validated(FULL)).expect("ingress");
        let a = ing.metadata.annotations.clone().expect("annotations");
        let get = |k: &str| {
            a.get(&format!("alb.ingress.kubernetes.io/{k}"))
                .map(String::as_str)
        };
        assert_eq!(get("scheme"), Some("internet-facing"));
        assert_eq!(get("target-type"), Some("ip"));
        assert_eq!(get("healthcheck-path"), Some("/healthz"));
        assert_eq!(get("healthcheck-port"), Some("traffic-port"));
        assert_eq!(get("healthcheck-interval-seconds"), Some("10"));
        assert_eq!(get("healthcheck-timeout-seconds"), Some("5"));
        assert_eq!(get("healthy-threshold-count"), Some("2"));
        assert_eq!(get("unhealthy-threshold-count"), Some("3"));
        assert_eq!(
            get("listen-ports"),
            Some(r#"[{"HTTP": 80}, {"HTTPS": 443}]"#)
        );
        assert_eq!(
            get("certificate-arn"),
            Some(
                "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
            )
        );
        assert_eq!(get("ssl-redirect"), Some("443"));
        assert_eq!(get("group.name"), Some("shared-alb"));
        assert_eq!(
            get("wafv2-acl-arn"),
            Some("arn:aws:wafv2:us-east-1:123456789012:regional/webacl/shop/0a1b2c3d")
        );
        let spec = ing.spec.expect("spec");
        assert_eq!(spec.ingress_class_name.as_deref(), Some("alb"));
        let rule = &spec.rules.expect("rules")[0];
        assert_eq!(rule.host.as_deref(), Some("shop.example.com"));
        let backend = rule.http.as_ref().expect("http").paths[0]
            .backend
            .service
            .clone()
            .expect("service");
        assert_eq!(backend.name, "shop");
        assert_eq!(backend.port.and_then(|p| p.name).as_deref(), Some("http"));
        assert_eq!(
            validated(FULL).names.url.as_deref(),
            Some("https://shop.example.com")
        );
    }

    /// Without a certificate there is only an HTTP listener and no redirect.
    #[test]
    fn http_only_without_certificate() {
        let mut app = validated(FULL);
        if let Some(i) = app.ingress.as_mut() {
            i.certificate_arn = None;
            i.ssl_redirect = false;
            i.group_name = None;
            i.waf_acl_arn = None;
            i.scheme = crate::api::Scheme::Internal;
        }
        app.names = crate::validate::resolve_names(&app);
        let a = ingress(&app)
            .and_then(|i| i.metadata.annotations)
            .expect("annotations");
        assert_eq!(
            a.get("alb.ingress.kubernetes.io/listen-ports")
                .map(String::as_str),
            Some(r#"[{"HTTP": 80}]"#)
        );
        assert_eq!(
            a.get("alb.ingress.kubernetes.io/scheme")
                .map(String::as_str),
            Some("internal")
        );
        for absent in [
            "certificate-arn",
            "ssl-redirect",
            "group.name",
            "wafv2-acl-arn",
        ] {
            assert!(
                !a.contains_key(&format!("alb.ingress.kubernetes.io/{absent}")),
                "{absent} must be absent"
            );
        }
        assert_eq!(app.names.url.as_deref(), Some("http://shop.example.com"));
    }

    /// No ingress section, no Ingress.
    #[test]
    fn no_ingress_section_means_no_ingress() {
        assert_eq!(ingress(&validated(SMALL)), None);
        assert_eq!(validated(SMALL).names.url, None);
    }

    const ALB: &str = "k8s-default-shop-0a1b2c3d4e-123456789.us-east-1.elb.amazonaws.com";

    /// Route 53 checkers send `Host: <ALB hostname>`: once the ALB has one, the Ingress routes
    /// exactly the health path for that host to the app, and nothing else.
    #[test]
    fn route53_health_checks_reach_the_app_through_the_alb_hostname() {
        let app = crate::fixtures::validated_in(crate::fixtures::DNS, "us-east-1");
        let rules = |lb: Option<&str>| -> Vec<(String, String, String)> {
            ingress_for(&app, lb)
                .and_then(|i| i.spec)
                .and_then(|s| s.rules)
                .expect("rules")
                .into_iter()
                .map(|r| {
                    let p = r.http.expect("http").paths.remove(0);
                    (
                        r.host.unwrap_or_default(),
                        p.path.unwrap_or_default(),
                        p.path_type,
                    )
                })
                .collect()
        };
        let app_rule = (
            "shop.example.com".to_string(),
            "/".to_string(),
            "Prefix".to_string(),
        );
        assert_eq!(rules(None), vec![app_rule.clone()]);
        assert_eq!(
            rules(Some(&format!("{}.", ALB.to_uppercase()))),
            vec![
                app_rule.clone(),
                (ALB.to_string(), "/healthz".to_string(), "Exact".to_string())
            ]
        );
        // An IP address is no Ingress host; the checkers would not send it anyway.
        assert_eq!(rules(Some("203.0.113.7")), vec![app_rule.clone()]);
        // Without a Route 53 health check nothing probes the ALB by its own name.
        let mut unchecked = app.clone();
        if let Some(d) = unchecked.dns.as_mut() {
            d.health_check = None;
        }
        let n = ingress_for(&unchecked, Some(ALB))
            .and_then(|i| i.spec)
            .and_then(|s| s.rules)
            .map(|r| r.len());
        assert_eq!(n, Some(1));
        assert_eq!(
            app.names.dns_url.as_deref(),
            Some("http://shop.example.com")
        );
    }
}
