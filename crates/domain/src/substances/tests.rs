use super::*;
use proptest::prelude::*;
use std::collections::HashMap;

#[test]
fn quantities_parse_in_ml_or_mg() {
    assert_eq!(parse_quantity("q", "2.5 mL", 50), Ok(2500));
    assert_eq!(parse_quantity("q", "2.5", 50), Ok(2500));
    assert_eq!(parse_quantity("q", " 0.125ml ", 50), Ok(125));
    assert_eq!(parse_quantity("q", "125 mg", 50), Ok(2500));
    assert_eq!(parse_quantity("q", "35 mg", 100), Ok(350));
    assert_eq!(parse_quantity("q", "10 mL", 100), Ok(10_000));
}

#[test]
fn bad_quantities_are_named() {
    let msg = |t: &str| parse_quantity("quantity", t, 50).unwrap_err().message;
    assert!(msg("2 g").contains("mL or mg"), "{}", msg("2 g"));
    assert!(msg("3 tablets").contains("mL or mg"));
    assert!(msg("-1 mL").contains("more than zero"));
    assert!(msg("0").contains("more than zero"));
    assert!(msg("").contains("give a quantity"));
    assert!(msg("abc").contains("mL or mg") || msg("abc").contains("not a number"));
    assert!(msg("1.2.3").contains("not a number"));
    assert!(msg("0.0001 mL").contains("three decimals"));
    assert!(msg("20000 mL").contains("more than any one movement"));
    // 0.01 mg at 50 mg/mL is 0.2 µL: not a whole µL.
    assert!(msg("0.01 mg").contains("whole number of µL"));
    assert_eq!(
        parse_quantity("quantity", "2 g", 50).unwrap_err().field,
        "quantity"
    );
}

#[test]
fn amounts_print_without_trailing_zeros() {
    assert_eq!(fmt_ml(2500), "2.5 mL");
    assert_eq!(fmt_ml(10_000), "10 mL");
    assert_eq!(fmt_ml(125), "0.125 mL");
    assert_eq!(fmt_ml(-1000), "-1 mL");
    assert_eq!(fmt_mg(2500, 50), "125 mg");
    assert_eq!(fmt_mg(350, 100), "35 mg");
    for (v, s) in [
        (0, "0"),
        (7, "0.007"),
        (50, "0.05"),
        (1050, "1.05"),
        (1005, "1.005"),
        (-250, "-0.25"),
        (-3000, "-3"),
        (123_456, "123.456"),
        (i64::MIN, "-9223372036854775.808"),
    ] {
        assert_eq!(fmt_milli(v), s);
        let mut buf = String::from("x");
        write_milli(&mut buf, v);
        assert_eq!(buf, format!("x{s}"), "appends");
    }
}

#[test]
fn ndc_and_dea_numbers_are_checked() {
    assert!(check_ndc("0409-2051-05").is_ok());
    assert!(check_ndc("42023-113-10").is_ok());
    assert!(check_ndc("0409205105").is_err());
    assert!(check_ndc("0409-2051-0X").is_err());
    // AB1234563: 1+3+5 + 2*(2+4+6) = 33 -> check digit 3.
    assert_eq!(check_dea("dea", "ab1234563"), Ok("AB1234563".into()));
    assert!(check_dea("dea", "AB1234564")
        .unwrap_err()
        .message
        .contains("check digit"));
    assert!(check_dea("dea", "A1234563").is_err());
}

#[test]
fn the_loss_clock_skips_the_weekend() {
    let fri: Date = "2026-11-27".parse().unwrap();
    let c = loss_clock(fri);
    assert_eq!(c.notify_by.to_string(), "2026-11-30");
    assert_eq!(c.form106_by.to_string(), "2027-01-11");
    let tue: Date = "2026-11-24".parse().unwrap();
    assert_eq!(loss_clock(tue).notify_by.to_string(), "2026-11-25");
    let sat: Date = "2026-11-28".parse().unwrap();
    assert_eq!(loss_clock(sat).notify_by.to_string(), "2026-11-30");
}

#[test]
fn a_draw_is_the_order_and_a_little_over() {
    assert_eq!(draw_limit_ug(35_000), 40_000);
    assert_eq!(draw_limit_ug(100_000), 110_000);
    // 4.3 mL of a 50 mg/mL vial for a 43 mg order (read at 10 mg/mL) is 215 mg.
    assert!(4_300 * 50 > draw_limit_ug(43_000));
    assert!(900 * 50 <= draw_limit_ug(43_000));
}

#[test]
fn days_count_both_ways() {
    let a: Date = "2026-11-28".parse().unwrap();
    let b: Date = "2027-02-26".parse().unwrap();
    assert_eq!(days_until(a, b), 90);
    assert_eq!(days_until(b, a), -90);
    assert_eq!(days_until(a, a), 0);
}

#[test]
fn balances_never_go_negative() {
    assert_eq!(apply(1000, -1000, 50), Ok(0));
    let e = apply(1000, -1001, 50).unwrap_err();
    assert_eq!(e.field, "quantity");
    assert!(e.message.contains("1 mL (50 mg)"), "{}", e.message);
    assert_eq!(stock_change(EntryKind::Waste, 500, true), 0);
    assert_eq!(stock_change(EntryKind::Waste, 500, false), -500);
    assert_eq!(stock_change(EntryKind::Administered, 500, true), 0);
    assert_eq!(stock_change(EntryKind::Receipt, 500, false), 500);
    assert_eq!(stock_change(EntryKind::Adjustment, -500, false), -500);
}

fn entry(seq: i64, prev: &str, lot: &str, change: i64, after: i64) -> LedgerEntry {
    let mut e = LedgerEntry {
        seq,
        id: format!("e{seq}"),
        at: seq,
        recorded_at: seq,
        clinic_id: "c1".into(),
        lot_id: lot.into(),
        kind: if change >= 0 { "receipt" } else { "draw" }.into(),
        change_ul: change,
        quantity_ul: change.abs(),
        balance_after_ul: after,
        draw_id: None,
        dose_order_id: None,
        patient_id: None,
        actor_user_id: "u1".into(),
        witness_user_id: None,
        witness2_user_id: None,
        counterparty: None,
        reason: None,
        reference_id: None,
        prev_hash: prev.into(),
        hash: String::new(),
    };
    e.hash = entry_hash(prev, &e);
    e
}

/// Appends movements the way the store does: refuse what `apply` refuses,
/// chain what it accepts.
fn run(ops: &[(u8, i64)]) -> Vec<LedgerEntry> {
    let mut out: Vec<LedgerEntry> = Vec::new();
    let mut bal: HashMap<String, i64> = HashMap::new();
    for (lot, change) in ops {
        let lot = format!("lot{lot}");
        let b = *bal.get(&lot).unwrap_or(&0);
        let Ok(after) = apply(b, *change, 50) else {
            continue;
        };
        bal.insert(lot.clone(), after);
        let prev = out
            .last()
            .map(|e| e.hash.clone())
            .unwrap_or_else(|| crate::audit::GENESIS.into());
        out.push(entry(out.len() as i64 + 1, &prev, &lot, *change, after));
    }
    out
}

proptest! {
    #[test]
    fn any_sequence_keeps_balances_equal_to_the_ledger(
        ops in proptest::collection::vec((0u8..3, -20_000i64..20_000), 0..200)
    ) {
        let entries = run(&ops);
        let mut sums = HashMap::new();
        let tip = verify_ledger((0, crate::audit::GENESIS.into()), &mut sums, &entries);
        prop_assert!(tip.is_ok(), "{tip:?}");
        for (_, b) in sums {
            prop_assert!(b >= 0);
        }
    }
}

#[test]
fn verify_finds_edits_gaps_and_false_balances() {
    let entries = run(&[(0, 5000), (0, -1000), (1, 2000), (0, -500)]);
    let fresh = || (0, crate::audit::GENESIS.to_string());
    assert!(verify_ledger(fresh(), &mut HashMap::new(), &entries).is_ok());

    let mut t = entries.clone();
    t[1].change_ul = -900;
    assert_eq!(
        verify_ledger(fresh(), &mut HashMap::new(), &t),
        Err(LedgerBreak::Altered { seq: 2 })
    );

    let mut t = entries.clone();
    t.remove(1);
    assert_eq!(
        verify_ledger(fresh(), &mut HashMap::new(), &t),
        Err(LedgerBreak::Gap { after: 1, next: 3 })
    );

    // A forged entry re-hashed to look whole still breaks the balance chain.
    let mut t = entries.clone();
    let prev = t[0].hash.clone();
    t[1] = entry(2, &prev, "lot0", -900, 4000);
    let r = verify_ledger(fresh(), &mut HashMap::new(), &t);
    assert!(r.is_err(), "{r:?}");
}

#[test]
fn the_loss_clock_skips_federal_holidays_as_observed() {
    let d = |s: &str| -> Date { s.parse().unwrap() };
    // The day before Thanksgiving: Friday.
    assert_eq!(loss_clock(d("2026-11-25")).notify_by, d("2026-11-27"));
    // Christmas Eve on a Thursday: Christmas, then the weekend.
    assert_eq!(loss_clock(d("2026-12-24")).notify_by, d("2026-12-28"));
    // July 4, 2027 is a Sunday, kept on Monday the 5th.
    assert_eq!(loss_clock(d("2027-07-02")).notify_by, d("2027-07-06"));
    // New Year's Day 2028 is a Saturday, kept on Friday, December 31, 2027.
    assert_eq!(loss_clock(d("2027-12-30")).notify_by, d("2028-01-03"));
    let h = federal_holidays(2026);
    assert_eq!(h.len(), 11);
    for x in [
        "2026-01-19",
        "2026-02-16",
        "2026-05-25",
        "2026-06-19",
        "2026-07-03",
        "2026-09-07",
        "2026-10-12",
        "2026-11-11",
        "2026-11-26",
        "2026-12-25",
    ] {
        assert!(h.contains(&d(x)), "{x}");
    }
    assert!(is_business_day(d("2026-11-30")));
}
