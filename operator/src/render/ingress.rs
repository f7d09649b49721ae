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
    Some(Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: Some(INGRESS_CLASS.into()),
            rules: Some(vec![IngressRule {
                host: Some(spec.host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".into()),
                        path_type: "Prefix".into(),
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
            }]),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    })
}

/// The URL users reach the app at.
pub fn url(app: &ValidatedApp) -> Option<String> {
    let spec = app.ingress.as_ref()?;
    let scheme = if spec.certificate_arn.is_some() {
        "https"
    } else {
        "http"
    };
    Some(format!("{scheme}://{}", spec.host))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fixtures::{FULL, SMALL, validated};

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
            url(&validated(FULL)).as_deref(),
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
            i.scheme = crate::crd::Scheme::Internal;
        }
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
        assert_eq!(url(&app).as_deref(), Some("http://shop.example.com"));
    }

    /// No ingress section, no Ingress.
    #[test]
    fn no_ingress_section_means_no_ingress() {
        assert_eq!(ingress(&validated(SMALL)), None);
        assert_eq!(url(&validated(SMALL)), None);
    }
}
