use super::*;

#[test]
fn pairs_parse_into_labels() {
    let labels = ChildLabels::parse(["team=platform", "example.com/cost-centre=A_1", "empty="])
        .expect("valid");
    let mut added = BTreeMap::new();
    labels.add_to(&mut added);
    assert_eq!(
        added,
        BTreeMap::from([
            ("empty".into(), String::new()),
            ("example.com/cost-centre".into(), "A_1".into()),
            ("team".into(), "platform".into()),
        ])
    );
}

#[test]
fn invalid_and_reserved_keys_are_refused_with_the_reason() {
    let cases = [
        ("team", ChildLabelError::NotAPair("team".into())),
        ("-team=a", ChildLabelError::Key("-team".into())),
        (
            "Example.com/a=b",
            ChildLabelError::Key("Example.com/a".into()),
        ),
        ("a/=b", ChildLabelError::Key("a/".into())),
        ("team=-x", ChildLabelError::Value("-x".into())),
        (
            "app.kubernetes.io/managed-by=me",
            ChildLabelError::Reserved("app.kubernetes.io/managed-by".into()),
        ),
        (
            "aggregation.dev/extension-server=x",
            ChildLabelError::Reserved("aggregation.dev/extension-server".into()),
        ),
    ];
    for (pair, error) in cases {
        assert_eq!(ChildLabels::parse([pair]), Err(error), "{pair}");
    }
    assert_eq!(
        ChildLabels::parse(["a=1", "a=2"]),
        Err(ChildLabelError::Repeated("a".into()))
    );
}

#[test]
fn the_operators_labels_win() {
    let labels =
        ChildLabels::parse(["team=platform", "app.kubernetes.io/part-of=x"]).expect("valid");
    let mut own = BTreeMap::from([("app.kubernetes.io/part-of".to_string(), "mine".to_string())]);
    labels.add_to(&mut own);
    assert_eq!(own["app.kubernetes.io/part-of"], "mine");
    assert_eq!(own["team"], "platform");
}
