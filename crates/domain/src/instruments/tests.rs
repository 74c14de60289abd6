//! Scoring against hand-worked examples at every band edge, branching, the
//! file checks, and totals in range for random answers.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::strategy::ValueTree;

use super::*;

fn reg() -> Registry {
    Registry::load(&[]).expect("shipped instruments load")
}

fn inst(id: &str) -> Arc<Instrument> {
    reg().current(id).expect(id).clone()
}

/// Answers for items `ids` that sum to `total`, filling from the first item
/// up to `max` each (a hand-workable spread: 3,3,2,0,... for 8 on 0-3 items).
fn spread(ids: &[&str], max: i32, total: i32) -> BTreeMap<String, i32> {
    let mut left = total;
    ids.iter()
        .map(|id| {
            let v = left.min(max);
            left -= v;
            (id.to_string(), v)
        })
        .collect()
}

fn band(i: &Instrument, a: &BTreeMap<String, i32>) -> (Option<i32>, String) {
    let s = i.score(a).expect("valid answers");
    (s.total, s.band.map(|b| b.level).unwrap_or_default())
}

const GAD7: [&str; 7] = ["1", "2", "3", "4", "5", "6", "7"];
const PHQ9: [&str; 9] = ["1", "2", "3", "4", "5", "6", "7", "8", "9"];

#[test]
fn every_shipped_file_loads_and_has_a_hash() {
    let r = reg();
    let ids: Vec<&str> = r.all_current().iter().map(|i| i.id.as_str()).collect();
    for want in [
        "gad7", "gad2", "phq9", "phq2", "pcl5", "oasis", "hama", "cssrs", "cadss6", "moaas",
        "aldrete",
    ] {
        assert!(ids.contains(&want), "{want} missing from {ids:?}");
    }
    for i in r.all_current() {
        assert_eq!(i.hash.len(), 64);
    }
}

#[test]
fn gad7_band_edges() {
    let g = inst("gad7");
    assert_eq!(g.range, (0, 21));
    for (total, level) in [
        (0, "minimal"),
        (4, "minimal"),
        (5, "mild"),
        (9, "mild"),
        (10, "moderate"),
        (14, "moderate"),
        (15, "severe"),
        (21, "severe"),
    ] {
        let a = spread(&GAD7, 3, total);
        assert_eq!(
            band(&g, &a),
            (Some(total), level.to_string()),
            "total {total}"
        );
        let s = g.score(&a).unwrap();
        let positive = s.flags.iter().any(|f| f.id == "screen_positive");
        assert_eq!(positive, total >= 10, "screen at {total}");
        assert!(!s.safety);
    }
}

#[test]
fn gad7_hand_worked_example() {
    // 1,2,3,0,1,2,3 = 12: moderate, screen positive.
    let g = inst("gad7");
    let a: BTreeMap<String, i32> = GAD7
        .iter()
        .zip([1, 2, 3, 0, 1, 2, 3])
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let s = g.score(&a).unwrap();
    assert_eq!(s.total, Some(12));
    assert_eq!(s.band.unwrap().label, "Moderate anxiety");
}

#[test]
fn gad2_and_phq2_screens() {
    for id in ["gad2", "phq2"] {
        let i = inst(id);
        assert_eq!(i.range, (0, 6), "{id}");
        for (total, pos) in [(0, false), (2, false), (3, true), (6, true)] {
            let mut a = spread(&["1", "2"], 3, total);
            if id == "phq2" {
                a.insert("9".into(), 0);
            }
            let s = i.score(&a).unwrap();
            assert_eq!(s.total, Some(total));
            assert_eq!(
                s.flags.iter().any(|f| f.id == "screen_positive"),
                pos,
                "{id} at {total}"
            );
        }
    }
}

#[test]
fn phq9_band_edges_and_item_nine() {
    let p = inst("phq9");
    assert_eq!(p.range, (0, 27), "the difficulty item is not scored");
    // Item 9 is filled last, so these totals leave it at 0 until 25.
    for (total, level) in [
        (0, "minimal"),
        (4, "minimal"),
        (5, "mild"),
        (9, "mild"),
        (10, "moderate"),
        (14, "moderate"),
        (15, "moderately_severe"),
        (19, "moderately_severe"),
        (20, "severe"),
        (24, "severe"),
    ] {
        let a = spread(&PHQ9, 3, total);
        assert_eq!(
            band(&p, &a),
            (Some(total), level.to_string()),
            "total {total}"
        );
        assert!(!p.score(&a).unwrap().safety, "item 9 is 0 at {total}");
    }
    // Item 9 at 1 with everything else 0: total 1, minimal, and still a safety flag.
    let mut a = spread(&PHQ9, 3, 0);
    a.insert("9".into(), 1);
    let s = p.score(&a).unwrap();
    assert_eq!(s.total, Some(1));
    assert!(s.safety);
    assert_eq!(s.flags[0].id, "self_harm");
    // The difficulty item is optional and never counts.
    let mut a = spread(&PHQ9, 3, 27);
    a.insert("10".into(), 3);
    assert_eq!(band(&p, &a), (Some(27), "severe".into()));
}

#[test]
fn pcl5_cut_point_and_provisional_diagnosis() {
    let p = inst("pcl5");
    assert_eq!(p.range, (0, 80));
    let ids: Vec<String> = (1..=20).map(|i| i.to_string()).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    for (total, level) in [(0, "mild"), (32, "mild"), (33, "severe"), (80, "severe")] {
        assert_eq!(
            band(&p, &spread(&refs, 4, total)),
            (Some(total), level.into())
        );
    }
    // Items at 2: one B (1), one C (6), two D (8, 9), two E (15, 16) = 12.
    let mut a: BTreeMap<String, i32> = refs.iter().map(|k| (k.to_string(), 0)).collect();
    for k in ["1", "6", "8", "9", "15", "16"] {
        a.insert(k.into(), 2);
    }
    let s = p.score(&a).unwrap();
    assert_eq!(s.total, Some(12));
    assert_eq!(s.subscales["b"], 2);
    assert_eq!(s.subscales["d"], 4);
    assert!(s.flags.iter().any(|f| f.id == "provisional_diagnosis"));
    assert!(!s.flags.iter().any(|f| f.id == "probable_ptsd"));
    // One E item short: no provisional diagnosis, even with a high total.
    a.insert("16".into(), 1);
    for k in ["2", "3", "4", "5", "10", "11", "12", "13", "14"] {
        a.insert(k.into(), 4);
    }
    let s = p.score(&a).unwrap();
    assert!(s.total.unwrap() >= 33);
    assert!(s.flags.iter().any(|f| f.id == "probable_ptsd"));
    assert!(!s.flags.iter().any(|f| f.id == "provisional_diagnosis"));
}

#[test]
fn oasis_hama_aldrete_moaas_edges() {
    let o = inst("oasis");
    let five = ["1", "2", "3", "4", "5"];
    for (t, pos) in [(0, false), (7, false), (8, true), (20, true)] {
        let s = o.score(&spread(&five, 4, t)).unwrap();
        assert_eq!(s.total, Some(t));
        assert_eq!(s.flags.iter().any(|f| f.id == "screen_positive"), pos);
    }
    let h = inst("hama");
    let ids: Vec<String> = (1..=14).map(|i| i.to_string()).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(h.range, (0, 56));
    for (t, level) in [
        (0, "minimal"),
        (7, "minimal"),
        (8, "mild"),
        (14, "mild"),
        (15, "moderate"),
        (23, "moderate"),
        (24, "severe"),
        (56, "severe"),
    ] {
        assert_eq!(band(&h, &spread(&refs, 4, t)), (Some(t), level.into()));
    }
    let a = inst("aldrete");
    let signs = [
        "activity",
        "respiration",
        "circulation",
        "consciousness",
        "oxygen",
    ];
    assert_eq!(a.range, (0, 10));
    for (t, ready) in [(0, false), (8, false), (9, true), (10, true)] {
        let s = a.score(&spread(&signs, 2, t)).unwrap();
        assert_eq!(
            s.flags.iter().any(|f| f.id == "discharge_ready"),
            ready,
            "{t}"
        );
    }
    let m = inst("moaas");
    for (v, sedated, escalate) in [
        (5, false, false),
        (4, false, false),
        (3, true, false),
        (2, true, false),
        (1, true, true),
        (0, true, true),
    ] {
        let s = m
            .score(&BTreeMap::from([("score".to_string(), v)]))
            .unwrap();
        assert_eq!(s.flags.iter().any(|f| f.id == "sedated"), sedated, "{v}");
        assert_eq!(s.flags.iter().any(|f| f.id == "escalate"), escalate, "{v}");
    }
}

#[test]
fn cadss6_sums_six_items() {
    let c = inst("cadss6");
    assert_eq!(c.range, (0, 24));
    let six = ["1", "2", "3", "4", "5", "6"];
    assert_eq!(c.score(&spread(&six, 4, 24)).unwrap().total, Some(24));
}

fn yn(pairs: &[(&str, i32)]) -> BTreeMap<String, i32> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[test]
fn cssrs_branching_and_risk() {
    let c = inst("cssrs");
    // Nothing endorsed.
    let s = c.score(&yn(&[("1", 0), ("2", 0), ("6", 0)])).unwrap();
    assert_eq!(s.band.unwrap().level, "none");
    assert!(!s.safety);
    assert_eq!(s.total, None);
    // Wish to be dead only: low, and still a safety task.
    let s = c.score(&yn(&[("1", 1), ("2", 0), ("6", 0)])).unwrap();
    assert_eq!(s.band.unwrap().level, "low");
    assert!(s.safety);
    // Thoughts with a method: moderate.
    let s = c
        .score(&yn(&[
            ("1", 1),
            ("2", 1),
            ("3", 1),
            ("4", 0),
            ("5", 0),
            ("6", 0),
        ]))
        .unwrap();
    assert_eq!(s.band.unwrap().level, "moderate");
    // Intent: high.
    let s = c
        .score(&yn(&[
            ("1", 1),
            ("2", 1),
            ("3", 0),
            ("4", 1),
            ("5", 0),
            ("6", 0),
        ]))
        .unwrap();
    assert_eq!(s.band.unwrap().level, "high");
    // Behaviour over 3 months ago: moderate; within 3 months: high.
    let s = c
        .score(&yn(&[("1", 0), ("2", 0), ("6", 1), ("6b", 0)]))
        .unwrap();
    assert_eq!(s.band.unwrap().level, "moderate");
    let s = c
        .score(&yn(&[("1", 0), ("2", 0), ("6", 1), ("6b", 1)]))
        .unwrap();
    assert_eq!(s.band.unwrap().level, "high");
    // Items 3-5 are asked only after a yes to 2: without it they are not required...
    assert!(c.score(&yn(&[("1", 0), ("2", 0), ("6", 0)])).is_ok());
    // ...after a yes they are.
    let Err(DomainError::Invalid(e)) = c.score(&yn(&[("1", 0), ("2", 1), ("6", 0)])) else {
        panic!("items 3-5 are required after a yes to 2");
    };
    let fields: Vec<&str> = e.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, ["answers.3", "answers.4", "answers.5"]);
    // An answer to a branch not taken is dropped, never scored: a stray
    // "yes" to item 4 after "no" to item 2 is not high risk.
    let s = c
        .score(&yn(&[("1", 0), ("2", 0), ("4", 1), ("6", 0)]))
        .unwrap();
    assert!(!s.answers.contains_key("4"));
    assert_eq!(s.band.unwrap().level, "none");
}

#[test]
fn bad_answers_are_named() {
    let g = inst("gad7");
    let mut a = spread(&GAD7, 3, 7);
    a.insert("1".into(), 4);
    a.insert("8".into(), 0);
    a.remove("7");
    let Err(DomainError::Invalid(e)) = g.score(&a) else {
        panic!("bad answers accepted");
    };
    let fields: Vec<&str> = e.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, ["answers.1", "answers.8"]);
    assert!(e[0].message.contains("4 is not an answer"));
    assert!(e[1].message.contains("not an item of GAD-7 version 1"));
    // With those fixed, the missing item is named.
    a.insert("1".into(), 0);
    a.remove("8");
    let Err(DomainError::Invalid(e)) = g.score(&a) else {
        panic!("missing answer accepted");
    };
    assert_eq!(e[0].field, "answers.7");
    assert_eq!(e[0].message, "is required");
}

const MINIMAL: &str = r#"
id = "mini"
version = 1
name = "Mini"
short_name = "Mini"
rater = "self"
licence = "test"
prompt = "?"
[scales]
s = [{ value = 0, label = "no" }, { value = 2, label = "yes" }]
[[items]]
id = "a"
text = "A"
scale = "s"
[[items]]
id = "b"
text = "B"
scale = "s"
"#;

#[test]
fn a_clinic_can_add_an_instrument_by_file() {
    let extra = vec![("mini.toml".to_string(), MINIMAL.to_string())];
    let r = Registry::load(&extra).unwrap();
    let m = r.current("mini").unwrap();
    assert_eq!(m.range, (0, 4));
    assert_eq!(m.score(&yn(&[("a", 2), ("b", 0)])).unwrap().total, Some(2));
    // A second version is kept beside the first.
    let v2 = MINIMAL.replace("version = 1", "version = 2");
    let r = Registry::load(&[
        ("mini.toml".into(), MINIMAL.into()),
        ("mini2.toml".into(), v2),
    ])
    .unwrap();
    assert_eq!(r.current("mini").unwrap().version, 2);
    assert_eq!(r.get("mini", 1).unwrap().version, 1);
    // The same version with other content is refused.
    let changed = MINIMAL.replace("text = \"A\"", "text = \"A changed\"");
    let err = Registry::load(&[
        ("a.toml".into(), MINIMAL.into()),
        ("b.toml".into(), changed),
    ])
    .unwrap_err();
    assert!(err.message.contains("new version"), "{err}");
}

#[test]
fn broken_files_are_refused_with_the_reason() {
    let cases = [
        (MINIMAL.replace("scale = \"s\"\n[[items]]", "scale = \"t\"\n[[items]]"), "not defined"),
        (MINIMAL.replace("id = \"b\"", "id = \"a\""), "appears twice"),
        (
            format!("{MINIMAL}[[bands]]\nmin = 0\nmax = 1\nlabel = \"x\"\nlevel = \"x\"\n"),
            "bands end at 1 but totals reach 4",
        ),
        (
            format!("{MINIMAL}[[bands]]\nmin = 1\nmax = 4\nlabel = \"x\"\nlevel = \"x\"\n"),
            "should start at 0",
        ),
        (
            format!("{MINIMAL}[[flags]]\nid = \"f\"\nlabel = \"f\"\nwhen = {{ item = \"z\", at_least = 1 }}\n"),
            "item \"z\", which does not exist",
        ),
        (
            format!("{MINIMAL}[[flags]]\nid = \"f\"\nlabel = \"f\"\nwhen = {{ item = \"a\" }}\n"),
            "give `equals`",
        ),
        (MINIMAL.replace("rater = \"self\"", "rater = \"robot\""), "unknown variant"),
        (format!("{MINIMAL}colour = \"blue\"\n"), "unknown field"),
    ];
    for (text, want) in cases {
        let err = Instrument::parse("x.toml", &text).unwrap_err();
        assert!(err.message.contains(want), "wanted {want:?}, got {err}");
    }
}

fn any_answers(i: &Instrument) -> impl Strategy<Value = BTreeMap<String, i32>> {
    let per_item: Vec<_> = i
        .items
        .iter()
        .map(|it| {
            let vals: Vec<i32> = i.choices(it).iter().map(|c| c.value).collect();
            (Just(it.id.clone()), proptest::sample::select(vals))
        })
        .collect();
    per_item.prop_map(|v| v.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn random_answers_score_in_range(pick in 0usize..11, seed in any::<u64>()) {
        let r = reg();
        let all = r.all_current();
        let i = all[pick % all.len()].clone();
        let mut runner = proptest::test_runner::TestRunner::new_with_rng(
            ProptestConfig::default(),
            proptest::test_runner::TestRng::from_seed(
                proptest::test_runner::RngAlgorithm::ChaCha,
                &[seed as u8; 32],
            ),
        );
        let answers = any_answers(&i).new_tree(&mut runner).unwrap().current();
        let s = i.score(&answers).unwrap();
        if let Some(t) = s.total {
            prop_assert!(t >= i.range.0 && t <= i.range.1, "{} total {t}", i.id);
            prop_assert!(s.band.is_some() || i.bands.is_empty(), "{} has no band for {t}", i.id);
        }
        for (sub, v) in &s.subscales {
            prop_assert!(*v >= 0 && s.total.is_none_or(|t| *v <= t), "{sub}");
        }
    }
}

#[test]
fn trends_response_remission_relapse() {
    let rules = inst("gad7").outcome.clone().unwrap();
    let p = |at: i64, total: i32| Point { at, total };
    // Baseline is the last score before the first dose.
    let t = trend(&[p(1, 18), p(2, 16), p(5, 8)], &[3, 4], &rules);
    assert_eq!(t.baseline.unwrap().total, 16);
    assert_eq!(t.response_at_most, Some(8));
    assert_eq!(t.status, TrendStatus::Response);
    assert_eq!(t.change_percent, Some(-50));
    // 9 from 16 is a 44 % fall: no response.
    let t = trend(&[p(2, 16), p(5, 9)], &[3], &rules);
    assert_eq!(t.status, TrendStatus::NoResponse);
    // Under 5: remission.
    let t = trend(&[p(2, 16), p(5, 4)], &[3], &rules);
    assert_eq!(t.status, TrendStatus::Remission);
    assert!(t.words.starts_with("Remission: now 4"), "{}", t.words);
    // 5 is not under 5: a response only.
    let t = trend(&[p(2, 16), p(5, 5)], &[3], &rules);
    assert_eq!(t.status, TrendStatus::Response);
    // Back to 10 after a response: relapse.
    let t = trend(&[p(2, 16), p(5, 6), p(9, 10)], &[3], &rules);
    assert_eq!(t.status, TrendStatus::Relapse);
    // One score: baseline only.
    let t = trend(&[p(2, 16)], &[3], &rules);
    assert_eq!(t.status, TrendStatus::Baseline);
}

#[test]
fn link_rules_fire_once_per_occasion() {
    use crate::ids::{ClinicId, PatientId};
    let h = 3_600_000_000i64;
    let d = 24 * h;
    let clinic = ClinicId::new();
    let (a, b, c) = (PatientId::new(), PatientId::new(), PatientId::new());
    let now = 1_000 * d;
    let visit = |id: &str, p, start: i64, completed, maintenance| DoseVisit {
        id: id.into(),
        clinic,
        patient: p,
        start,
        end: start + 2 * h,
        completed,
        maintenance,
    };
    let visits = vec![
        // a: a dose in 20 hours (before-dose links due), and one that ended 25 h ago.
        visit("v1", a, now + 20 * h, false, false),
        visit("v0", a, now - 27 * h, true, false),
        // b: last dose 3 weeks ago, nothing booked: weekly follow-up.
        visit("v2", b, now - 21 * d, true, false),
        // c: a weekly maintenance course: monthly.
        visit("v3", c, now - 10 * d, true, true),
        visit("v4", c, now + 4 * d, false, true),
    ];
    let due = due_links(now, &visits, &DEFAULT_LINK_RULES);
    let keys: Vec<&str> = due.iter().map(|x| x.key.as_str()).collect();
    assert!(
        keys.contains(&"before:v1:gad7") && keys.contains(&"before:v1:phq9"),
        "{keys:?}"
    );
    assert!(keys.contains(&"after:v0:gad7"), "{keys:?}");
    assert!(due
        .iter()
        .any(|x| x.patient == b && x.key.starts_with("week:")));
    assert!(due
        .iter()
        .any(|x| x.patient == c && x.key.starts_with("month:")));
    // a is in an active course: no weekly follow-up; c is in maintenance: no weekly.
    assert!(!due
        .iter()
        .any(|x| x.patient == a && x.key.starts_with("week:")));
    assert!(!due
        .iter()
        .any(|x| x.patient == c && x.key.starts_with("week:")));
    // The before-dose link stops working when the visit starts.
    let before = due.iter().find(|x| x.key == "before:v1:gad7").unwrap();
    assert_eq!(before.expires_at, now + 20 * h);
    // Evaluated an hour later, the same occasions give the same keys.
    let later: Vec<String> = due_links(now + h, &visits, &DEFAULT_LINK_RULES)
        .into_iter()
        .map(|x| x.key)
        .collect();
    for k in ["before:v1:gad7", "after:v0:gad7"] {
        assert!(later.iter().any(|x| x == k));
    }
    // Two days later the after-dose occasion has passed: not sent late.
    let much_later = due_links(now + 2 * d, &visits, &DEFAULT_LINK_RULES);
    assert!(!much_later.iter().any(|x| x.key == "after:v0:gad7"));
}

/// An instrument that asks about suicide keeps its safety flag: a file
/// that drops it, weakens it, or narrows it to some answers is refused.
#[test]
fn a_suicide_item_keeps_its_safety_flag() {
    let phq9 = include_str!("../../instruments/phq9.toml");
    assert!(Instrument::parse("phq9.toml", phq9).is_ok());
    for (changed, why) in [
        (
            phq9.replace("safety = true", "safety = false"),
            "not a safety flag",
        ),
        (
            phq9.replace(
                "when = { item = \"9\", at_least = 1 }",
                "when = { item = \"9\", at_least = 2 }",
            ),
            "misses 1",
        ),
        (
            phq9.replace(
                "when = { item = \"9\", at_least = 1 }",
                "when = { item = \"9\", equals = 1 }",
            ),
            "misses 2 and 3",
        ),
        (
            phq9.replace(
                "when = { item = \"9\", at_least = 1 }",
                "when = { item = \"1\", at_least = 1 }",
            ),
            "on another item",
        ),
    ] {
        assert_ne!(changed, phq9, "{why}: the change did not apply");
        let e = Instrument::parse("phq9.toml", &changed).expect_err(why);
        assert!(e.message.contains("asks about suicide"), "{why}: {e}");
    }
    let cssrs = include_str!("../../instruments/cssrs.toml");
    assert!(Instrument::parse("cssrs.toml", cssrs).is_ok());
    let dropped = cssrs.replacen("safety = true", "safety = false", 3);
    assert!(Instrument::parse("cssrs.toml", &dropped).is_err());
}
