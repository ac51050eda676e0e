//! [`ObjectRouter`]: the router of the providers whose objects are built from the canary
//! alone ([`Kind`]), applied and restored through [`Objects`].

use async_trait::async_trait;
use canary_api::Canary;
use canary_core::Routes;
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use crate::object::{Objects, cluster_scoped, namespace};
use crate::{Error, Kind, Result, TrafficRouter, apex_name, appmesh, gloo, istio};

/// The router of a [`Kind`]: its objects built from the canary and applied by [`Objects`].
pub struct ObjectRouter {
    pub(crate) objects: Objects,
    pub(crate) kind: Kind,
}

impl ObjectRouter {
    async fn current(&self, canary: &Canary) -> Result<Option<Value>> {
        self.objects
            .get(canary, &self.kind.resource(), &apex_name(canary))
            .await
    }

    /// Every object the provider writes for `canary` at `routes`, in the order they are
    /// applied (what the apex object routes to before the apex object).
    async fn desired(&self, canary: &Canary, routes: Routes) -> Result<Vec<(ApiResource, Value)>> {
        let mut out = Vec::new();
        if self.kind == Kind::Gloo {
            out.extend(self.gloo_upstreams(canary).await?);
        }
        if self.kind == Kind::Istio {
            let gvk = GroupVersionKind::gvk("networking.istio.io", "v1beta1", "DestinationRule");
            let dr = ApiResource::from_gvk_with_plural(&gvk, "destinationrules");
            out.extend(
                istio::destination_rules(canary)
                    .into_iter()
                    .map(|r| (dr.clone(), r)),
            );
        }
        if self.kind != Kind::AppMesh {
            out.push((
                self.kind.resource(),
                self.kind
                    .build_with(canary, routes, &self.objects.options)?,
            ));
            return Ok(out);
        }
        let Some(sel) = &self.objects.selector else {
            return Err(Error::Invalid(
                "App Mesh needs the target's selector label to build its virtual nodes".into(),
            ));
        };
        let mesh = |kind: &str, plural: &str| {
            let gvk = GroupVersionKind::gvk("appmesh.k8s.aws", "v1beta2", kind);
            ApiResource::from_gvk_with_plural(&gvk, plural)
        };
        let nodes = mesh("VirtualNode", "virtualnodes");
        out.extend(
            appmesh::virtual_nodes(canary, sel)
                .into_iter()
                .map(|n| (nodes.clone(), n)),
        );
        let routers = mesh("VirtualRouter", "virtualrouters");
        let [apex, canary_router] = appmesh::virtual_routers(canary, routes);
        out.push((routers.clone(), canary_router));
        out.push((routers, apex));
        let services = mesh("VirtualService", "virtualservices");
        out.extend(
            appmesh::virtual_services(canary)
                .into_iter()
                .map(|v| (services.clone(), v)),
        );
        Ok(out)
    }
}

impl ObjectRouter {
    /// Gloo's Upstreams for the `-primary` and `-canary` Services, with the settings of the
    /// `spec.upstreamRef` Upstream.
    async fn gloo_upstreams(&self, canary: &Canary) -> Result<Vec<(ApiResource, Value)>> {
        let upstreams = gloo::upstream_resource();
        let config = match &canary.spec.upstream_ref {
            Some(r) => {
                let ns = r.namespace.as_deref().unwrap_or(namespace(canary));
                let found = match ns == namespace(canary) {
                    true => self.objects.get(canary, &upstreams, &r.name).await?,
                    false => self.objects.get_elsewhere(ns, &upstreams, &r.name).await?,
                };
                Some(found.ok_or_else(|| {
                    Error::Invalid(format!(
                        "spec.upstreamRef.name: upstream {}.{ns} not found",
                        r.name
                    ))
                })?)
            }
            None => None,
        };
        let services = gloo::service_resource();
        let mut out = Vec::new();
        for side in [gloo::Side::Primary, gloo::Side::Canary] {
            let name = side.service_name(canary);
            let Some(service) = self.objects.get_local(canary, &services, &name).await? else {
                return Err(Error::Invalid(format!(
                    "service {name}.{} not found: Gloo's upstream needs it",
                    namespace(canary)
                )));
            };
            let up = gloo::upstream(canary, side, &service, config.as_ref());
            out.push((upstreams.clone(), up));
        }
        Ok(out)
    }
}

#[async_trait]
impl TrafficRouter for ObjectRouter {
    async fn reconcile(&self, canary: &Canary) -> Result<()> {
        let routes = match self.current(canary).await? {
            Some(obj) => self.kind.routes_of(&obj, canary).unwrap_or_default(),
            None => Routes::default(),
        };
        for (resource, obj) in self.desired(canary, routes).await? {
            self.objects.apply(canary, &resource, &obj).await?;
        }
        Ok(())
    }

    async fn set_routes(&self, canary: &Canary, routes: Routes) -> Result<()> {
        let obj = self
            .kind
            .build_with(canary, routes, &self.objects.options)?;
        self.objects
            .apply(canary, &self.kind.resource(), &obj)
            .await
    }

    async fn get_routes(&self, canary: &Canary) -> Result<Routes> {
        match self.current(canary).await? {
            Some(obj) => self.kind.routes_of(&obj, canary),
            None => Err(Error::Invalid(format!(
                "{} {} not found",
                self.kind.resource().kind.to_lowercase(),
                apex_name(canary)
            ))),
        }
    }

    async fn finalize(&self, canary: &Canary) -> Result<()> {
        if let Some(current) = self.current(canary).await?
            && self.objects.ours(&current, canary)
        {
            let resource = self.kind.resource();
            if cluster_scoped(&resource) {
                // Nothing owns it: left behind it would send the service's traffic to the
                // deleted primary.
                return self
                    .objects
                    .delete(canary, &resource, &apex_name(canary))
                    .await;
            }
            // Routes go back to the primary; the objects are garbage-collected with the canary.
            self.set_routes(canary, Routes::default()).await?;
        }
        // Objects someone else made: each gets back its spec as it was before the canary
        // took it over (the apex object, and a user's DestinationRules or App Mesh objects).
        // A spec the provider cannot build still lets the canary go: its apex object alone.
        let objects = self
            .desired(canary, Routes::default())
            .await
            .unwrap_or_else(|_| {
                vec![(
                    self.kind.resource(),
                    json!({"metadata": {"name": apex_name(canary)}}),
                )]
            });
        for (resource, obj) in objects {
            let name = obj["metadata"]["name"].as_str().unwrap_or_default();
            match self.objects.get(canary, &resource, name).await? {
                Some(found) if !self.objects.ours(&found, canary) => {
                    self.objects
                        .restore(canary, &resource, name, &found)
                        .await?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}
