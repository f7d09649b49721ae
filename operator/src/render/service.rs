//! The ClusterIP Service the ALB targets (target-type ip registers the pod IPs behind it).

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::PORT_NAME;
use crate::meta::selector_labels;
use crate::validate::ValidatedApp;

pub fn service(app: &ValidatedApp) -> Service {
    Service {
        metadata: app.owner.child_meta(),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector_labels(&app.owner.name)),
            ports: Some(vec![ServicePort {
                name: Some(PORT_NAME.into()),
                port: app.port,
                target_port: Some(IntOrString::String(PORT_NAME.into())),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{FULL, validated};

    /// The ALB reaches pods through this Service's named port, so the selector and port must match the pods.
    #[test]
    fn selects_the_app_pods_on_the_named_port() {
        let svc = service(&validated(FULL));
        let spec = svc.spec.expect("spec");
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(spec.selector, Some(selector_labels("shop")));
        let ports = spec.ports.expect("ports");
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].port, 8080);
        assert_eq!(
            ports[0].target_port,
            Some(IntOrString::String("http".into()))
        );
        assert_eq!(svc.metadata.name.as_deref(), Some("shop"));
        assert_eq!(svc.metadata.namespace.as_deref(), Some("shop"));
    }
}
