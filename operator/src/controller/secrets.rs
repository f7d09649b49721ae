//! The connection Secrets halo manages: watched cluster-wide, or — when the operator may only
//! touch Secrets in some namespaces (HALO_SECRET_NAMESPACES, the chart's
//! `rbac.secrets.clusterWide=false`) — watched in each of those namespaces, each with a cache of
//! its own. An app elsewhere that needs a Secret is refused before anything is created in AWS.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::pin::Pin;
use std::sync::Arc;

use futures::{FutureExt, Stream};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::meta::{LABEL_MANAGED_BY, MANAGED_BY};
use crate::validate::ValidatedApp;
use crate::{Error, Result};

/// Something that finds a cached object by namespace and name.
pub trait Lookup<K: Resource> {
    fn lookup(&self, key: &ObjectRef<K>) -> Option<Arc<K>>;
}

impl<K> Lookup<K> for Store<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    fn lookup(&self, key: &ObjectRef<K>) -> Option<Arc<K>> {
        self.get(key)
    }
}

/// The Secret caches: one for the whole cluster, or one per namespace halo may use.
#[derive(Clone)]
pub enum SecretCache {
    All(Store<Secret>),
    Namespaces(BTreeMap<String, Store<Secret>>),
}

impl From<Store<Secret>> for SecretCache {
    fn from(store: Store<Secret>) -> Self {
        SecretCache::All(store)
    }
}

impl Lookup<Secret> for SecretCache {
    fn lookup(&self, key: &ObjectRef<Secret>) -> Option<Arc<Secret>> {
        match self {
            SecretCache::All(store) => store.get(key),
            SecretCache::Namespaces(stores) => stores.get(key.namespace.as_deref()?)?.get(key),
        }
    }
}

type SecretStream = Pin<Box<dyn Stream<Item = Result<Secret, watcher::Error>> + Send>>;

impl SecretCache {
    /// The caches and the watch stream that feeds them (managed Secrets only, managedFields
    /// dropped). `namespaces` empty: one cluster-wide watch.
    pub fn watch(client: &Client, namespaces: &[String]) -> (SecretCache, SecretStream) {
        if namespaces.is_empty() {
            let (store, stream) = managed_cache_of(Api::<Secret>::all(client.clone()));
            return (SecretCache::All(store), Box::pin(stream));
        }
        let mut stores = BTreeMap::new();
        let mut streams = Vec::new();
        for ns in namespaces {
            let (store, stream) = managed_cache_of(Api::<Secret>::namespaced(client.clone(), ns));
            stores.insert(ns.clone(), store);
            streams.push(Box::pin(stream) as SecretStream);
        }
        (
            SecretCache::Namespaces(stores),
            Box::pin(futures::stream::select_all(streams)),
        )
    }

    /// Completes once the cluster-wide cache has its first list. Per-namespace caches are not
    /// waited for here: a watch that cannot list (a namespace deleted, or not granted to halo)
    /// must not hold up every app and finalizer of the cluster; [`SecretCache::check`] refuses
    /// only the apps of that namespace until it lists.
    pub async fn wait_until_ready(
        &self,
    ) -> std::result::Result<(), reflector::store::WriterDropped> {
        match self {
            SecretCache::All(store) => store.wait_until_ready().await,
            SecretCache::Namespaces(_) => Ok(()),
        }
    }

    /// Refuses an app that needs a connection Secret in a namespace halo may not write to, or
    /// whose Secret watch has not listed yet.
    pub fn check(&self, app: ValidatedApp, needs_secret: bool) -> Result<ValidatedApp> {
        let SecretCache::Namespaces(stores) = self else {
            return Ok(app);
        };
        let ns = &app.owner.namespace;
        if !needs_secret {
            return Ok(app);
        }
        if let Some(store) = stores.get(ns) {
            let listed = matches!(store.wait_until_ready().now_or_never(), Some(Ok(())));
            if listed {
                return Ok(app);
            }
            return Err(Error::InvalidSpec {
                field: "metadata.namespace".into(),
                message: format!(
                    "the watch of connection Secrets in namespace {ns} has not listed yet: check \
                     that the namespace exists and that halo's Role there grants list and watch \
                     on secrets (halo's log names the watch error); apps in other namespaces \
                     are not held up; nothing was created in AWS"
                ),
            });
        }
        let allowed: Vec<&str> = stores.keys().map(String::as_str).collect();
        Err(Error::InvalidSpec {
            field: "metadata.namespace".into(),
            message: format!(
                "this app needs a connection Secret, and this halo may manage Secrets only in {} \
                 (HALO_SECRET_NAMESPACES, the chart's rbac.secrets.namespaces): add {ns} there, \
                 or set rbac.secrets.clusterWide=true; nothing was created in AWS",
                allowed.join(", ")
            ),
        })
    }
}

/// A reflector cache of the `K` objects halo manages that `api` sees, and the stream that
/// feeds it.
pub(crate) fn managed_cache_of<K>(
    api: Api<K>,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let cfg = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}"));
    let stream = watcher(api, cfg)
        .default_backoff()
        .modify(|o: &mut K| o.meta_mut().managed_fields = None)
        .reflect(writer)
        .touched_objects();
    (reader, stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::watcher::Event;

    fn secret(ns: &str, name: &str) -> Secret {
        let mut s = Secret::default();
        s.metadata.namespace = Some(ns.into());
        s.metadata.name = Some(name.into());
        s
    }

    fn namespaced(namespaces: &[&str]) -> SecretCache {
        let mut stores = BTreeMap::new();
        for ns in namespaces {
            let (reader, mut writer) = reflector::store::<Secret>();
            writer.apply_watcher_event(&Event::InitDone);
            writer.apply_watcher_event(&Event::Apply(secret(ns, "web-connection")));
            stores.insert((*ns).to_string(), reader);
        }
        SecretCache::Namespaces(stores)
    }

    fn app(ns: &str) -> ValidatedApp {
        let text = format!(
            "apiVersion: halo.dev/v1alpha1\nkind: HighlyAvailableApp\nmetadata: {{name: web, namespace: {ns}, uid: u1}}\nspec: {{image: nginx:1.27, port: 8080}}\n"
        );
        let app: crate::api::HighlyAvailableApp =
            serde_saphyr::from_str(&text).expect("test app parses");
        let owner = crate::validate::owner_of(&app, "default", None).expect("owner");
        crate::validate::validate(&app, owner).expect("valid")
    }

    #[test]
    fn lookup_goes_to_the_namespace_cache() {
        let cache = namespaced(&["shop", "pay"]);
        let key = |ns: &str| ObjectRef::<Secret>::new("web-connection").within(ns);
        assert!(cache.lookup(&key("pay")).is_some());
        assert!(cache.lookup(&key("other")).is_none());
        assert!(cache.lookup(&ObjectRef::new("web-connection")).is_none());
    }

    #[test]
    fn an_app_needing_a_secret_outside_the_namespaces_is_refused_with_the_list() {
        let cache = namespaced(&["shop", "pay"]);
        let Err(Error::InvalidSpec { field, message }) = cache.check(app("other"), true) else {
            panic!("accepted an app in a namespace halo may not write Secrets to");
        };
        assert_eq!(field, "metadata.namespace");
        assert_eq!(
            message,
            "this app needs a connection Secret, and this halo may manage Secrets only in pay, shop \
             (HALO_SECRET_NAMESPACES, the chart's rbac.secrets.namespaces): add other there, \
             or set rbac.secrets.clusterWide=true; nothing was created in AWS"
        );
        assert!(cache.check(app("shop"), true).is_ok());
        assert!(cache.check(app("other"), false).is_ok(), "no Secret needed");
        let (all, _) = reflector::store::<Secret>();
        assert!(SecretCache::All(all).check(app("other"), true).is_ok());
    }

    /// A namespace whose Secret watch never lists (deleted, or no RBAC there) holds up only the
    /// apps of that namespace: the cluster-wide readiness does not wait for it, and its apps are
    /// refused with what to check.
    #[test]
    fn a_namespace_that_never_lists_holds_up_only_its_own_apps() {
        let SecretCache::Namespaces(mut stores) = namespaced(&["shop"]) else {
            unreachable!("namespaced caches");
        };
        let (gone, _writer) = reflector::store::<Secret>();
        stores.insert("gone".to_string(), gone);
        let cache = SecretCache::Namespaces(stores);
        assert!(matches!(
            cache.wait_until_ready().now_or_never(),
            Some(Ok(()))
        ));
        assert!(cache.check(app("shop"), true).is_ok());
        assert!(cache.check(app("gone"), false).is_ok(), "no Secret needed");
        let Err(Error::InvalidSpec { field, message }) = cache.check(app("gone"), true) else {
            panic!("accepted an app whose Secret cache never listed");
        };
        assert_eq!(field, "metadata.namespace");
        assert!(
            message.starts_with(
                "the watch of connection Secrets in namespace gone has not listed yet"
            ),
            "{message}"
        );
    }
}
