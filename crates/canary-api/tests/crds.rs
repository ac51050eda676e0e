//! The committed CRDs in deploy/crds/ are what the types generate (`cargo xtask crds`, or
//! `UPDATE_EXPECT=1 cargo test -p canary-api --test crds`, rewrites them).

#[test]
fn committed_crds_are_up_to_date() {
    for (file, yaml) in canary_api::crds().expect("render") {
        expect_test::expect_file![format!("../../../deploy/crds/{file}")].assert_eq(&yaml);
    }
}
