//! The `real` cluster's certificates: one CA signing the API server's serving certificate,
//! a client certificate per component, KWOK's serving certificate, and the key that signs
//! ServiceAccount tokens. Every file is written into `<cluster dir>/pki`, and each
//! component's kubeconfig names them by path.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The names the API server answers to: loopback, and the in-cluster names of the
/// `kubernetes` Service (10.96.0.1 is the first address of the Service range).
const API_SERVER_NAMES: [&str; 7] = [
    "127.0.0.1",
    "localhost",
    "10.96.0.1",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// The CA certificate's file name in the PKI directory.
pub(crate) const CA_CERT: &str = "ca.crt";

/// A certificate and its key, as files.
pub(crate) struct Pair {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

/// Every file the control plane reads.
pub(crate) struct Pki {
    /// The CA every component trusts, and that signs client certificates.
    pub(crate) ca: Pair,
    pub(crate) apiserver: Pair,
    /// The API server's client certificate towards KWOK (logs, exec, port-forward).
    pub(crate) kubelet_client: Pair,
    pub(crate) kwok_serving: Pair,
    /// The administrator (`system:masters`): xtask's kubectl, mesh-sim, KWOK.
    pub(crate) admin: Pair,
    pub(crate) controller_manager: Pair,
    pub(crate) scheduler: Pair,
    /// Signs ServiceAccount tokens (the API server, the controller manager).
    pub(crate) service_account_key: PathBuf,
    /// Verifies them.
    pub(crate) service_account_pub: PathBuf,
}

impl Pki {
    /// Creates a CA and every certificate under `dir`.
    pub(crate) fn create(dir: &Path) -> Result<Pki> {
        std::fs::create_dir_all(dir)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "flaggerd local cluster CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let ca = write(dir, "ca", &ca_cert.pem(), &ca_key.serialize_pem())?;
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf = |name: &str, common: &str, org: Option<&str>, sans: &[&str], server: bool| {
            let mut params =
                CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
            params.distinguished_name.push(DnType::CommonName, common);
            if let Some(org) = org {
                params
                    .distinguished_name
                    .push(DnType::OrganizationName, org);
            }
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            params.extended_key_usages = vec![if server {
                ExtendedKeyUsagePurpose::ServerAuth
            } else {
                ExtendedKeyUsagePurpose::ClientAuth
            }];
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &issuer)?;
            write(dir, name, &cert.pem(), &key.serialize_pem())
        };

        let service_account_key = dir.join("service-account.key");
        let service_account_pub = dir.join("service-account.pub");
        let signing = KeyPair::generate()?;
        std::fs::write(&service_account_key, signing.serialize_pem())?;
        std::fs::write(&service_account_pub, signing.public_key_pem())?;
        Ok(Pki {
            apiserver: leaf("apiserver", "kube-apiserver", None, &API_SERVER_NAMES, true)?,
            kubelet_client: leaf(
                "apiserver-kubelet-client",
                "kube-apiserver-kubelet-client",
                Some("system:masters"),
                &[],
                false,
            )?,
            kwok_serving: leaf("kwok", "kwok", None, &["127.0.0.1", "localhost"], true)?,
            admin: leaf(
                "admin",
                "kubernetes-admin",
                Some("system:masters"),
                &[],
                false,
            )?,
            controller_manager: leaf(
                "controller-manager",
                "system:kube-controller-manager",
                None,
                &[],
                false,
            )?,
            scheduler: leaf("scheduler", "system:kube-scheduler", None, &[], false)?,
            ca,
            service_account_key,
            service_account_pub,
        })
    }
}

fn write(dir: &Path, name: &str, cert: &str, key: &str) -> Result<Pair> {
    let pair = Pair {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    };
    std::fs::write(&pair.cert, cert).with_context(|| format!("cannot write {name}.crt"))?;
    std::fs::write(&pair.key, key).with_context(|| format!("cannot write {name}.key"))?;
    Ok(pair)
}

/// A kubeconfig reaching `server` with the CA and either a client certificate or a token.
pub(crate) fn kubeconfig(server: &str, ca: &Path, user: &User<'_>) -> String {
    let credentials = match user {
        User::Certificate(pair) => format!(
            "    client-certificate: {}\n    client-key: {}\n",
            pair.cert.display(),
            pair.key.display()
        ),
        User::Token(token) => format!("    token: {token}\n"),
    };
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: user
  user:
{credentials}contexts:
- name: local
  context:
    cluster: local
    user: user
current-context: local
",
        ca = ca.display()
    )
}

/// Who a kubeconfig authenticates as.
pub(crate) enum User<'a> {
    Certificate(&'a Pair),
    /// A bearer token (a ServiceAccount's, from the TokenRequest API).
    Token(&'a str),
}
