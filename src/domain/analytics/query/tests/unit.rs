use super::*;

#[test]
fn placeholder_uses_helpers() {
    let e = err("SELECT 1", &ctx());
    assert_eq!(e.code, QueryErrorCode::InvalidQuery);
    let conn = db();
    assert_eq!(
        run(
            &conn,
            "SELECT count() AS c FROM key_verifications_v1",
            &ctx()
        ),
        vec![json!({"c": 7})]
    );
}
