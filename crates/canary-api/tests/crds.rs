//! The committed CRDs in deploy/crds/ are what the types generate.

#[test]
fn committed_crds_are_up_to_date() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds");
    for (file, yaml) in canary_api::crds().expect("render") {
        let path = dir.join(file);
        if std::env::var_os("UPDATE_CRDS").is_some() {
            std::fs::write(&path, &yaml).expect("write");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == yaml,
            "deploy/crds/{file} is stale: run `cargo xtask crds`"
        );
    }
}
