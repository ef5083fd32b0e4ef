//! `skip` appends one line per skip to the file `SPREAD_SKIP_LOG` names. (Alone in its test
//! binary: it sets a variable of the process.)

#[test]
fn skips_are_appended_to_the_skip_log() {
    let dir = spread_testkit::TempDir::new("skip-log");
    let log = dir.path().join("skips");
    std::fs::write(&log, "earlier: kept\n").unwrap();
    std::env::set_var("SPREAD_SKIP_LOG", &log);
    spread_testkit::skip("first_test", "no C Spread");
    spread_testkit::skip("second_test", "needs root");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "earlier: kept\nfirst_test: no C Spread\nsecond_test: needs root\n"
    );
}
