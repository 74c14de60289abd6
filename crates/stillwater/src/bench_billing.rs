//! `stillwater bench --only billing`: cash-pay billing at a busy clinic's
//! scale. The demo organisation with its month of billing is loaded, then a
//! year of check-outs is written at Glendale through the store's own paths
//! (`INVOICES` invoices of an infusion less the new-patient special, each
//! paid by card through `record_billing_entry`, which rebuilds the invoice's
//! account under a lock before it appends). Then, through the use cases
//! the pages and the API call:
//!
//! 1. check-out: one invoice issued and paid (the two writes a desk makes);
//! 2. a patient's account with a year of visits;
//! 3. the day close;
//! 4. the reports over the year (revenue, offers, package liability,
//!    receivables by age over every invoice of the clinic).
//!
//! Numbers are printed, not asserted; `BENCHMARKS.md` keeps the latest.

// Money is written as dollars_cents (275_00 is $275.00).
#![allow(clippy::inconsistent_digit_grouping)]

use std::time::Instant;

use anyhow::Context;
use clinic::actor::Caller;
use clinic::billing as uc;
use domain::audit::Action;
use domain::billing::EntryKind;
use store::audit::NewAuditEvent;
use store::billing::{NewEntry, NewInvoice, NewLine};
use store::Store;

const INVOICES: usize = 8_000;
const DAY: i64 = 86_400_000_000;

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// One check-out: an infusion invoice with the special's discount, paid by card.
async fn checkout(
    store: &Store,
    clinic: &str,
    patient: &str,
    by: &str,
    at: i64,
    k: usize,
) -> anyhow::Result<()> {
    let inv = NewInvoice {
        id: id(),
        clinic_id: clinic.to_string(),
        patient_id: patient.to_string(),
        appointment_id: None,
        kind: "visit",
        currency: "USD".into(),
        service_date: domain::time::to_timestamp(at)
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date()
            .to_string(),
        issued_by: by.to_string(),
        issued_at: at,
        lines: vec![
            NewLine {
                kind: EntryKind::Charge,
                service: "iv_infusion".into(),
                description: "IV infusion".into(),
                codes:
                    r#"[{"code":"96365","units":1,"words":"IV infusion, first hour","ndc":null}]"#
                        .into(),
                minor: 300_00,
                offer_id: None,
            },
            NewLine {
                kind: EntryKind::Discount,
                service: "iv_infusion".into(),
                description: "New Patient Special: IV infusion at $275.00".into(),
                codes: "[]".into(),
                minor: 25_00,
                offer_id: None,
            },
        ],
        package: None,
        membership: None,
    };
    let mut ev = NewAuditEvent::new(Action::BillInvoice, "bench");
    ev.clinic_id = Some(clinic.to_string());
    ev.patient_id = Some(patient.to_string());
    store.insert_invoice(&inv, ev).await?;
    let pay = NewEntry {
        id: id(),
        invoice_id: inv.id.clone(),
        kind: EntryKind::Payment,
        method: Some("card".into()),
        reference: Some(format!("AUTH {k:06}")),
        minor: 275_00,
        currency: "USD".into(),
        refund_of: None,
        package_id: None,
        reason: None,
        at: at + 60_000_000,
        recorded_by: by.to_string(),
    };
    let mut ev = NewAuditEvent::new(Action::BillPayment, "bench");
    ev.clinic_id = Some(clinic.to_string());
    ev.patient_id = Some(patient.to_string());
    store.record_billing_entry(&pay, &[], ev).await?;
    Ok(())
}

pub async fn run(store: &Store) -> anyhow::Result<()> {
    let t = Instant::now();
    let hash =
        clinic::passwords::hash_blocking("bench-password-123").map_err(anyhow::Error::msg)?;
    crate::demo::load(store, &hash).await?;
    let protocols = domain::protocols::Protocols::builtin();
    let registry = domain::instruments::Registry::builtin();
    crate::demo_intake::load(store, &protocols, &registry).await?;
    crate::demo_substances::load(store, &protocols, &registry).await?;
    crate::demo_billing::load(store).await?;
    let org = store.any_org().await?.context("no organisation")?;
    let clinics = store.clinics_of_org(org).await?;
    let g = clinics
        .iter()
        .find(|c| c.slug == "stillwater-glendale")
        .context("no Glendale")?
        .id;
    let dana = store
        .user_id_by_username("dana.frontdesk")
        .await?
        .context("front desk")?;
    let patients = store.search_patients(&[g], "", 500).await?;
    let now = store.now();
    let (clinic, by) = (g.to_string(), dana.to_string());
    let mut lat = Vec::with_capacity(INVOICES);
    let seed = Instant::now();
    for k in 0..INVOICES {
        // Thirty a day over the past year, spread over the patients.
        let at = now - 365 * DAY + (k as i64) * (365 * DAY / INVOICES as i64);
        let p = patients[k % patients.len()].id.to_string();
        let one = Instant::now();
        checkout(store, &clinic, &p, &by, at, k).await?;
        lat.push(ms(one.elapsed()));
    }
    let seeded = seed.elapsed().as_secs_f64();
    println!(
        "seeded in {:.1} s: {INVOICES} check-outs (invoice + card payment) at {:.0}/s; per check-out p50 {:.2} ms, p99 {:.2} ms",
        t.elapsed().as_secs_f64(),
        INVOICES as f64 / seeded,
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
    );

    let state = clinic::Clinic::new(store.clone(), clinic::Config::default());
    let desk = Caller::of_user(&state, dana, "bench")
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let busy = patients[0].id.to_string();
    let mut v = vec![];
    for _ in 0..100 {
        let one = Instant::now();
        let a = uc::account(&state, &desk, &busy)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        v.push(ms(one.elapsed()));
        std::hint::black_box(a);
    }
    let n = uc::account(&state, &desk, &busy)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?
        .invoices
        .len();
    println!(
        "account of a patient with {n} invoices: p50 {:.2} ms, p99 {:.2} ms",
        pct(&mut v, 0.5),
        pct(&mut v, 0.99)
    );
    let mut v = vec![];
    for _ in 0..100 {
        let one = Instant::now();
        std::hint::black_box(
            uc::day_close(&state, &desk, &clinic, "")
                .await
                .map_err(|e| anyhow::anyhow!("{e:?}"))?,
        );
        v.push(ms(one.elapsed()));
    }
    println!(
        "day close: p50 {:.2} ms, p99 {:.2} ms",
        pct(&mut v, 0.5),
        pct(&mut v, 0.99)
    );
    let from = domain::time::to_timestamp(now - 365 * DAY)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();
    let mut v = vec![];
    let mut rows = 0;
    for _ in 0..10 {
        let one = Instant::now();
        let r = uc::reports(&state, &desk, &clinic, &from, "")
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        v.push(ms(one.elapsed()));
        rows = r.revenue.iter().map(|x| x.count).sum::<i64>();
    }
    println!(
        "reports over a year ({rows} charges): p50 {:.0} ms, p99 {:.0} ms",
        pct(&mut v, 0.5),
        pct(&mut v, 0.99)
    );
    let mut v = vec![];
    for k in 0..200 {
        let p = patients[k % patients.len()].id.to_string();
        let one = Instant::now();
        checkout(store, &clinic, &p, &by, now, INVOICES + k).await?;
        v.push(ms(one.elapsed()));
    }
    println!(
        "check-out with a year on file: p50 {:.2} ms, p99 {:.2} ms",
        pct(&mut v, 0.5),
        pct(&mut v, 0.99)
    );
    Ok(())
}
