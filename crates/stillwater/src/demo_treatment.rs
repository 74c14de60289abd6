//! The demo's treatment day: Glendale's floor with a chair in every phase,
//! each visit run through the same use cases the chair view calls (check-in,
//! checklist, order and second check, infusion timeline, readings, alerts
//! answered, Aldrete, discharge and a signed note), backdated to look like a
//! morning in progress.

use clinic::actor::Caller;
use clinic::treatment::{self as uc, AdminInput, ChecklistInput, ReadingInput};
use clinic::Clinic;
use domain::ids::UserId;
use domain::instruments::Registry;
use domain::protocols::Protocols;
use domain::treatment::{self as tx, AdminKind, Aldrete, Vitals};
use store::Store;

const MINUTE: i64 = 60_000_000;

/// How far each visit has come.
#[derive(Clone, Copy, PartialEq, PartialOrd)]
pub(crate) enum Stage {
    PreDose,
    Dosing,
    Recovery,
    Ready,
    Discharged,
}

/// A nurse, a second nurse and a prescriber at work on the floor.
pub(crate) struct Chairside<'a> {
    state: &'a Clinic,
    /// The loader's own clock: it records past visits at their times.
    store: &'a Store,
    nurse: Caller,
    /// Checks the doses the first nurse draws.
    checker: Caller,
    prescriber: Caller,
    clinic: domain::ids::ClinicId,
    /// The 50 mg/mL lot doses are drawn from: (lot id, number, expiry).
    stock: (String, String, String),
}

impl<'a> Chairside<'a> {
    pub(crate) async fn new(
        state: &'a Clinic,
        store: &'a Store,
        clinic: domain::ids::ClinicId,
        (nurse, checker, prescriber): (UserId, UserId, UserId),
    ) -> anyhow::Result<Self> {
        let caller = |u: UserId| Caller::of_user(state, u, "demo-loader");
        let err = |e: clinic::Error| anyhow::anyhow!("demo staff: {e:?}");
        let today = domain::time::to_timestamp(state.now())
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date()
            .to_string();
        let stock = store
            .cs_balances(&[clinic.to_string()])
            .await?
            .into_iter()
            .find(|b| b.balance_ul > 0 && b.strength_mg_per_ml == 50 && b.expires_on > today)
            .map(|b| (b.lot_id, b.lot_number, b.expires_on))
            .ok_or_else(|| {
                anyhow::anyhow!("the demo's treatment day draws from a 50 mg/mL lot: load the Schedule III demo first")
            })?;
        Ok(Chairside {
            state,
            store,
            nurse: caller(nurse).await.map_err(err)?,
            checker: caller(checker).await.map_err(err)?,
            prescriber: caller(prescriber).await.map_err(err)?,
            clinic,
            stock,
        })
    }

    /// A controlled-substance movement through the same use case as the page.
    async fn cs(
        &self,
        kind: &str,
        quantity_ul: i64,
        link: (&str, &str),
    ) -> anyhow::Result<Option<String>> {
        let waste = kind == "waste";
        let input = clinic::substances::MovementInput {
            kind: kind.into(),
            clinic_id: self.clinic.to_string(),
            lot_id: Some(self.stock.0.clone()),
            quantity: Some(domain::substances::fmt_ml(quantity_ul)),
            dose_order_id: (!link.0.is_empty()).then(|| link.0.to_string()),
            draw_id: (!link.1.is_empty()).then(|| link.1.to_string()),
            reason: waste.then(|| "remainder of the draw".to_string()),
            witness_username: waste.then(|| "nora.nurse".to_string()),
            witness_password: waste.then(|| crate::demo::DEMO_PASSWORD.to_string()),
            ..Default::default()
        };
        let entries = clinic::substances::record_movement(self.state, &self.nurse, input)
            .await
            .map_err(|e| anyhow::anyhow!("demo draw: {e:?}"))?;
        Ok(entries.first().and_then(|e| e.draw_id.clone()))
    }

    /// One visit: checked in `minutes_ago`, taken as far as `stage`, with a
    /// reading every five minutes from check-in until now. Every step goes
    /// through the use case the chair view calls, at its own moment: the
    /// store's clock is set back to the check-in and moved on step by step
    /// (so no step is backdated past the gate), then put back.
    pub(crate) async fn visit(
        &self,
        patient: &str,
        chair: &str,
        minutes_ago: i64,
        stage: Stage,
        k: i64,
    ) -> anyhow::Result<String> {
        let clock = self.store.clock().clone();
        let offset = clock.offset();
        let now = clock.now();
        let r = self
            .visit_on(&clock, now, patient, chair, minutes_ago, stage, k)
            .await;
        clock.set_offset(offset);
        r
    }

    #[allow(clippy::too_many_arguments)]
    async fn visit_on(
        &self,
        clock: &domain::time::Clock,
        now: i64,
        patient: &str,
        chair: &str,
        minutes_ago: i64,
        stage: Stage,
        k: i64,
    ) -> anyhow::Result<String> {
        let err = |e: clinic::Error| anyhow::anyhow!("demo treatment day: {e:?}");
        let opened = now - minutes_ago * MINUTE;
        let at = |t: i64| clock.set(t.min(now));
        at(opened);
        let id = uc::check_in(
            self.state,
            &self.nurse,
            uc::CheckIn {
                patient_id: patient.into(),
                appointment_id: None,
                chair_id: Some(chair.into()),
                at: None,
            },
        )
        .await
        .map_err(err)?;
        let reading = |v: Vitals| ReadingInput {
            values: v,
            taken_at: None,
        };
        let calm = |i: i64| Vitals {
            hr: Some(68 + (i * 7 + k) % 9),
            sbp: Some(118 + (i * 5 + k * 3) % 12),
            dbp: Some(74 + (i * 3 + k) % 8),
            spo2: Some(97 + (i + k) % 3),
            rr: Some(13 + (i + k) % 4),
            ..Vitals::default()
        };
        at(opened + 2 * MINUTE);
        uc::record_reading(self.state, &self.nurse, &id, reading(calm(0)))
            .await
            .map_err(err)?;
        at(opened + 3 * MINUTE);
        let checklist = ChecklistInput {
            identity_confirmed: Some(true),
            weight_kg: Some(58.0 + (k * 9 % 40) as f64),
            pregnancy: Some(if k % 2 == 0 {
                tx::Pregnancy::NegativeTest
            } else {
                tx::Pregnancy::NotApplicable
            }),
            fasting_confirmed: Some(true),
            escort_name: Some(
                ["Sam Ortiz", "Lee Park", "Ana Silva", "Joe Hart", "Kim Wu"][k as usize % 5].into(),
            ),
            escort_phone: Some(format!("602-555-01{:02}", 10 + k)),
            no_alcohol: Some(true),
            medications_reviewed: Some(true),
            medication_changes: Some("none".into()),
            suicide_risk: Some(tx::RiskScreen::Negative),
            ..Default::default()
        };
        if stage == Stage::PreDose {
            // The nurse is part-way through: identity, weight and escort so far.
            let partial = ChecklistInput {
                identity_confirmed: Some(true),
                weight_kg: checklist.weight_kg,
                escort_name: checklist.escort_name.clone(),
                escort_phone: checklist.escort_phone.clone(),
                ..Default::default()
            };
            uc::save_checklist(self.state, &self.nurse, &id, partial)
                .await
                .map_err(err)?;
            return Ok(id);
        }
        uc::save_checklist(self.state, &self.nurse, &id, checklist)
            .await
            .map_err(err)?;
        // The pre-session GAD-7, answered on the tablet in the chair.
        at(opened + 6 * MINUTE);
        let answers: std::collections::BTreeMap<String, i32> = (1..=7)
            .map(|i: i64| (i.to_string(), ((i + k) % 3 + i64::from(k % 4 == 0)) as i32))
            .collect();
        let pid: domain::ids::PatientId =
            patient.parse().map_err(|_| anyhow::anyhow!("patient id"))?;
        clinic::measures::record(
            self.state,
            &self.nurse,
            pid,
            "gad7",
            None,
            &answers,
            None,
            store::measures::Source::Staff,
        )
        .await
        .map_err(err)?;
        at(opened + 8 * MINUTE);
        let ordered = uc::order_dose(self.state, &self.prescriber, &id, 0.5)
            .await
            .map_err(err)?;
        // Drawn to the next 0.1 mL above the dose; what is left is wasted
        // before a witness once the infusion stops.
        let order_id = ordered
            .record
            .order
            .as_ref()
            .map(|o| o.id.clone())
            .unwrap_or_default();
        let given = ordered
            .order
            .as_ref()
            .map(|m| (m.mg * 1000.0 / 50.0).round() as i64)
            .unwrap_or(0);
        let drawn = (given / 100 + 1) * 100;
        at(opened + 10 * MINUTE);
        let draw_id = self
            .cs("draw", drawn, (&order_id, ""))
            .await?
            .unwrap_or_default();
        // The second nurse reads the lot off the vial the first one drew.
        at(opened + 12 * MINUTE);
        uc::check_dose(self.state, &self.checker, &id, &self.stock.1, "")
            .await
            .map_err(err)?;
        let timeline = |kind, reason: Option<&str>| {
            uc::administer(
                self.state,
                &self.nurse,
                &id,
                AdminInput {
                    kind,
                    at: None,
                    rate_ml_h: None,
                    reason: reason.map(String::from),
                },
            )
        };
        let start = opened + 15 * MINUTE;
        at(start);
        timeline(AdminKind::Start, None).await.map_err(err)?;
        let stop = start + 40 * MINUTE;
        let end = if stage == Stage::Dosing { now } else { stop };
        // Readings every five minutes while dosing, with sedation scored.
        let mut t = start + 5 * MINUTE;
        let mut i = 1;
        while t <= end.min(now) {
            at(t);
            let mut v = calm(i);
            v.moaas = Some(if i % 3 == 0 { 4 } else { 5 });
            v.sbp = v.sbp.map(|s| s + 4 * i.min(5));
            if stage == Stage::Dosing && t + 5 * MINUTE > now {
                // The latest reading of the running infusion is too high.
                v.sbp = Some(186);
                v.dbp = Some(104);
            }
            if stage == Stage::Recovery && i == 4 {
                v.sbp = Some(184);
            }
            let visit = uc::record_reading(self.state, &self.nurse, &id, reading(v))
                .await
                .map_err(err)?;
            if stage != Stage::Dosing {
                for a in visit.record.alerts.iter().filter(|a| a.ack_at.is_none()) {
                    uc::acknowledge(
                        self.state,
                        &self.prescriber,
                        &id,
                        &a.id,
                        Some("pause"),
                        "Paused 3 minutes; BP settled to 150/90, resumed at the same rate.",
                    )
                    .await
                    .map_err(err)?;
                    at(t + MINUTE);
                    timeline(AdminKind::Pause, Some("Blood pressure 184 systolic"))
                        .await
                        .map_err(err)?;
                    at(t + 4 * MINUTE);
                    timeline(AdminKind::Resume, Some("BP 150/90"))
                        .await
                        .map_err(err)?;
                }
            }
            t += 5 * MINUTE;
            i += 1;
        }
        if stage == Stage::Dosing {
            return Ok(id);
        }
        at(stop);
        timeline(AdminKind::Stop, Some("Infusion complete"))
            .await
            .map_err(err)?;
        if !draw_id.is_empty() {
            self.cs("administered", given, ("", &draw_id)).await?;
            at(stop + MINUTE);
            self.cs("waste", drawn - given, ("", &draw_id)).await?;
        }
        if k % 2 == 1 {
            at(stop + 5 * MINUTE);
            uc::give_medication(
                self.state,
                &self.nurse,
                &id,
                tx::MedicationGiven {
                    name: "ondansetron".into(),
                    dose: "4 mg".into(),
                    route: "IV".into(),
                    reason: "Nausea 5/10 after the infusion".into(),
                    at: None,
                },
            )
            .await
            .map_err(err)?;
        }
        // Recovery readings every ten minutes.
        let mut t = stop + 10 * MINUTE;
        while t <= now {
            at(t);
            uc::record_reading(self.state, &self.nurse, &id, reading(calm(i)))
                .await
                .map_err(err)?;
            t += 10 * MINUTE;
            i += 1;
        }
        if stage == Stage::Recovery {
            return Ok(id);
        }
        at(stop + 42 * MINUTE);
        uc::score_recovery(
            self.state,
            &self.nurse,
            &id,
            Aldrete {
                activity: 2,
                respiration: 2,
                circulation: 2,
                consciousness: 2,
                spo2: 2,
            },
        )
        .await
        .map_err(err)?;
        if stage == Stage::Ready {
            return Ok(id);
        }
        at(stop + 45 * MINUTE);
        uc::discharge(
            self.state,
            &self.nurse,
            &id,
            "Alert and steady on standing; left with escort; instructions given.",
        )
        .await
        .map_err(err)?;
        at(stop + 50 * MINUTE);
        uc::sign_note(self.state, &self.prescriber, &id)
            .await
            .map_err(err)?;
        Ok(id)
    }
}

/// Loads Glendale's floor: five patients made ready for infusions, then one
/// visit each in pre-dose, dosing (with an alert still open), recovery, ready
/// for discharge, and discharged with a signed note.
pub async fn load(store: &Store, protocols: &Protocols, registry: &Registry) -> anyhow::Result<()> {
    let (Some(nina), Some(nora), Some(paul)) = (
        store.user_id_by_username("nina.nurse").await?,
        store.user_id_by_username("nora.nurse").await?,
        store.user_id_by_username("paul.prescriber").await?,
    ) else {
        return Ok(());
    };
    let Some(org) = store.any_org().await? else {
        return Ok(());
    };
    let clinics = store.clinics_of_org(org).await?;
    let Some(clinic) = clinics.iter().find(|c| c.slug == "stillwater-glendale") else {
        return Ok(());
    };
    let state = clinic::Clinic::new(store.clone(), clinic::Config::default())
        .with_protocols(protocols.clone(), vec![])
        .with_instruments(registry.clone());
    let side = Chairside::new(&state, store, clinic.id, (nina, nora, paul)).await?;
    let resources = store.resources(clinic.id).await?;
    let chair = |name: &str| {
        resources
            .iter()
            .find(|r| r.resource.name == name)
            .map(|r| r.resource.id.to_string())
    };
    // Patients after those the pre-treatment demo uses (12 to 16).
    let patients = store.search_patients(&[clinic.id], "", 200).await?;
    let plan = [
        ("Chair 1", 170, Stage::Discharged),
        ("Chair 2", 120, Stage::Ready),
        ("Chair 3", 70, Stage::Recovery),
        ("Chair 4", 40, Stage::Dosing),
        // Chair 1's first patient has gone home; the next is being prepared.
        ("Chair 1", 8, Stage::PreDose),
    ];
    for (k, (p, (name, minutes, stage))) in patients.iter().skip(17).zip(plan).enumerate() {
        let Some(chair) = chair(name) else {
            continue;
        };
        crate::demo_intake::make_ready(
            store,
            protocols,
            registry,
            clinic,
            p,
            (nina, paul),
            3 + k as i64,
        )
        .await?;
        side.visit(&p.id.to_string(), &chair, minutes, stage, k as i64)
            .await?;
    }
    Ok(())
}
