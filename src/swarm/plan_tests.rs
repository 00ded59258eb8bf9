use super::*;

fn asked() -> Asked {
    Asked {
        brokers: vec![],
        mosquitto: false,
        lamps: 10,
        lamp_offset: 0,
        run_id: Some("r1".into()),
        apps: 2,
        rate: 100.0,
        mix: "desired=0.5,set_config=0.5".into(),
        ramp: 100.0,
        duration: "10s".into(),
        grace: "5s".into(),
        max_messages: None,
        qos: 1,
        prefix: "swarm".into(),
        state_dir: None,
        restart_broker_at: None,
        broker_down: "2s".into(),
        tls_ca: None,
        tls_cert: None,
        tls_key: None,
    }
}

fn refused(change: impl FnOnce(&mut Asked)) -> String {
    let mut a = asked();
    change(&mut a);
    a.validate("d").expect_err("refused").to_string()
}

#[test]
fn a_plan_in_bounds_gets_defaults() {
    let plan = asked().validate("d").unwrap();
    assert_eq!(
        plan.brokers,
        vec![BrokerAddr {
            host: "127.0.0.1".into(),
            port: 1883
        }]
    );
    assert_eq!(plan.max_messages, 1100);
    assert_eq!(plan.desired_share, 0.5);
    assert_eq!(plan.ramp_time(), Duration::from_millis(100));
    assert_eq!(plan.deadline(), Duration::from_millis(100 + 10_000 + 5_000 + 30_000));
    assert_eq!(plan.descriptors(), 10 + 4 + 256);
    let mut a = asked();
    a.run_id = None;
    assert_eq!(a.validate("r123").unwrap().run_id, "r123");
}

#[test]
fn hard_bounds_are_refused() {
    assert!(refused(|a| a.lamps = 100_001).contains("--lamps"));
    assert!(refused(|a| a.lamps = 0).contains("--lamps"));
    assert!(refused(|a| a.apps = 11).contains("--apps"));
    assert!(refused(|a| a.rate = 1_000_001.0).contains("--rate"));
    assert!(refused(|a| a.rate = f64::NAN).contains("--rate"));
    assert!(refused(|a| a.ramp = 0.5).contains("--ramp"));
    assert!(refused(|a| a.duration = "61m".into()).contains("--duration"));
    assert!(refused(|a| a.duration = "0s".into()).contains("--duration"));
    assert!(refused(|a| a.qos = 2).contains("--qos"));
    assert!(refused(|a| a.grace = "11m".into()).contains("--grace"));
    // One hour exactly is allowed, at a rate within the lamps' 9000 intents each.
    let mut a = asked();
    a.duration = "1h".into();
    a.rate = 20.0;
    assert!(a.validate("d").is_ok());
}

#[test]
fn names_that_break_topics_are_refused() {
    assert!(refused(|a| a.run_id = Some("a.b".into())).contains("--run-id"));
    assert!(refused(|a| a.run_id = Some("a/b".into())).contains("--run-id"));
    assert!(refused(|a| a.prefix = "s+".into()).contains("--prefix"));
    assert!(refused(|a| a.prefix = "s/#".into()).contains("--prefix"));
    assert!(refused(|a| a.prefix = "s//t".into()).contains("--prefix"));
    let mut a = asked();
    a.prefix = "fleet/test".into();
    assert!(a.validate("d").is_ok());
}

#[test]
fn brokers_are_only_those_given() {
    assert!(refused(|a| a.brokers = vec!["nohost".into()]).contains("--broker"));
    assert!(refused(|a| a.brokers = vec!["h:0".into()]).contains("--broker"));
    assert!(
        refused(|a| {
            a.mosquitto = true;
            a.brokers = vec!["127.0.0.1:1".into()];
        })
        .contains("--mosquitto")
    );
    assert!(refused(|a| a.restart_broker_at = Some("2s".into())).contains("--mosquitto"));
    // 10 lamps: 90,000 intents tell themselves apart, 90,001 do not.
    assert!(refused(|a| a.max_messages = Some(90_001)).contains("at most 9000 a lamp"));
    let mut fits = asked();
    fits.max_messages = Some(90_000);
    fits.validate("d").expect("9000 a lamp");
    assert!(refused(|a| a.tls_cert = Some("{id}.pem".into())).contains("need --tls-ca"));
    assert!(
        refused(|a| {
            a.tls_ca = Some("ca.pem".into());
            a.tls_cert = Some("{id}.pem".into());
        })
        .contains("go together")
    );
    assert!(
        refused(|a| {
            a.mosquitto = true;
            a.restart_broker_at = Some("10s".into());
        })
        .contains("within")
    );
    let mut a = asked();
    a.brokers = vec!["127.0.0.2:1884".into(), "127.0.0.3:1885".into()];
    let plan = a.validate("d").unwrap();
    assert_eq!(
        plan.brokers[1],
        BrokerAddr {
            host: "127.0.0.3".into(),
            port: 1885
        }
    );
    let mut a = asked();
    a.mosquitto = true;
    assert!(a.validate("d").unwrap().brokers.is_empty());
}

#[test]
fn mix_and_durations_parse() {
    assert_eq!(parse_mix("desired=1"), Ok(1.0));
    assert_eq!(parse_mix("set_config=1"), Ok(0.0));
    assert_eq!(parse_mix("desired=0.25,set_config=0.75"), Ok(0.25));
    assert!(parse_mix("desired=0.5,set_config=0.6").is_err());
    assert!(parse_mix("delete=1").is_err());
    assert!(parse_mix("desired=2").is_err());
    assert!(parse_mix("desired=0.5,desired=0.5").is_err());
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
    assert!(parse_duration("5 days").is_err());
    assert!(parse_duration("-1s").is_err());
}
