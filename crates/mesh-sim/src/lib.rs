//! mesh-sim: the data plane of flaggerd's local test cluster. It is test infrastructure and
//! is never linked into flaggerd.
//!
//! Today: [`podinfo`], a podinfo-like backend serving what the seeds call. The proxy that
//! routes cluster names through kube-sim's Services and mesh objects, and exports each mesh's
//! Prometheus series, is the next part of this crate.

pub mod podinfo;
