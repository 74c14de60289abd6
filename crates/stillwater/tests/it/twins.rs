//! Each rusqlite fast path against its sqlx twin, on the same SQLite file
//! (`Store::without_fast_paths`): the point read of a patient, the ledger
//! read of a report and the ledger walk of a CSV export must answer alike.
//! SQLite only: PostgreSQL has no fast paths.

use store::substances::{LedgerFilter, LedgerRowRef};

use crate::helpers::*;

/// A ledger walk written out as one line per entry, the way the CSV export
/// visits rows.
async fn walk(s: &store::Store, f: &LedgerFilter) -> (Vec<String>, usize) {
    let (lines, n) = s
        .cs_ledger_visit(
            f,
            Vec::new(),
            |out: &mut Vec<String>, r: &LedgerRowRef<'_>| {
                out.push(format!("{r:?}"));
                Ok(())
            },
        )
        .await
        .unwrap();
    (lines, n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fast_path_answers_as_its_sqlx_twin() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    crate::billing::month_of_visits(&app).await;
    let fast = &app.store;
    let twin = fast.without_fast_paths();
    let (g, d) = (app.glendale, app.denver);

    // Patients: every one, asked for within its clinic, the other, and both.
    let all = fast.search_patients(&[g, d], "", 200).await.unwrap();
    assert!(all.len() > 10, "the demo has patients: {}", all.len());
    for p in &all {
        for clinics in [vec![g], vec![d], vec![g, d]] {
            let a = fast.patient(p.id, &clinics).await.unwrap();
            let b = twin.patient(p.id, &clinics).await.unwrap();
            assert_eq!(a, b, "patient {} within {clinics:?}", p.id);
            assert_eq!(a.is_some(), clinics.contains(&p.clinic_id));
        }
    }

    // The ledger: every entry, a month of one kind, one patient's, newest
    // first with a limit.
    let one_patient = all.first().map(|p| p.id.to_string());
    let filters = [
        LedgerFilter {
            clinics: vec![g.to_string(), d.to_string()],
            ..Default::default()
        },
        LedgerFilter {
            clinics: vec![g.to_string()],
            kinds: vec!["administered", "waste"],
            from: Some(app.store.now() - 30 * 86_400_000_000),
            ..Default::default()
        },
        LedgerFilter {
            clinics: vec![g.to_string(), d.to_string()],
            patient_id: one_patient,
            ..Default::default()
        },
        LedgerFilter {
            clinics: vec![d.to_string()],
            newest_first: true,
            limit: Some(25),
            ..Default::default()
        },
    ];
    let mut entries = 0;
    for f in &filters {
        let a = fast.cs_ledger(f).await.unwrap();
        let b = twin.cs_ledger(f).await.unwrap();
        assert_eq!(format!("{a:?}"), format!("{b:?}"), "ledger read {f:?}");
        let (wa, na) = walk(fast, f).await;
        let (wb, nb) = walk(&twin, f).await;
        assert_eq!((na, &wa), (nb, &wb), "ledger walk {f:?}");
        assert_eq!(na, a.len(), "the walk visits what the read returns");
        entries += a.len();
    }
    assert!(entries > 100, "the demo's month has a ledger: {entries}");
}
