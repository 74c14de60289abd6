//! Demo data for the front door and measurement-based care: patients with
//! months of GAD-7 and PHQ-9 scores around a course of infusions (people who
//! remit, respond, respond partly, relapse, or do not respond), one open
//! safety task, and leads in every status made through the real public use
//! cases (assessment, consultation booking, conversion).

use std::collections::BTreeMap;

use domain::audit::Action;
use domain::ids::{ClinicId, PatientId, ResponseId, TaskId};
use domain::instruments::Registry;
use domain::leads::{AssessmentInput, LeadStatus};
use domain::scheduling::{plan_claims, Preferences, VisitPlan};
use store::audit::NewAuditEvent;
use store::measures::{NewResponse, NewTask, Source};
use store::scheduling::{NewVisit, Status};
use store::Store;

const DAY: i64 = 86_400_000_000;
const WEEK: i64 = 7 * DAY;

fn event(
    clinic: ClinicId,
    patient: PatientId,
    a: Action,
    kind: &str,
    obj: String,
) -> NewAuditEvent {
    let mut e = NewAuditEvent::new(a, "demo-loader");
    e.clinic_id = Some(clinic.to_string());
    e.patient_id = Some(patient.to_string());
    e.object_type = Some(kind.into());
    e.object_id = Some(obj);
    e.source_ip = Some("cli".into());
    e
}

/// Splits a total over `n` items of at most `max` each, front-loaded.
fn spread(total: i32, n: usize, max: i32) -> BTreeMap<String, i32> {
    let mut left = total;
    (1..=n)
        .map(|i| {
            let v = left.min(max);
            left -= v;
            (i.to_string(), v)
        })
        .collect()
}

/// A course's shape: GAD-7 at baseline and after each week, by archetype.
fn trajectory(kind: usize, weeks: usize) -> Vec<i32> {
    let (start, end, relapse) = match kind % 5 {
        0 => (17, 3, false),  // remission
        1 => (16, 7, false),  // response
        2 => (18, 12, false), // partial
        3 => (15, 5, true),   // response, then relapse
        _ => (19, 17, false), // no response
    };
    (0..weeks)
        .map(|w| {
            let f = (w as f64 / 6.0).min(1.0);
            let mut v = start as f64 + (end - start) as f64 * f;
            if relapse && w > weeks - 4 {
                v = end as f64 + 2.5 * (w + 4 - weeks) as f64;
            }
            // A little week-to-week noise, never outside the scale.
            let noise = [0, 1, -1, 0, 1, 0, -1][w % 7] as f64;
            (v + noise).round().clamp(0.0, 21.0) as i32
        })
        .collect()
}

/// Loads the history; returns (responses, past doses, leads) made.
pub async fn load(store: &Store, registry: &Registry) -> anyhow::Result<(usize, usize, usize)> {
    let Some(org) = store.any_org().await? else {
        return Ok((0, 0, 0));
    };
    let clinics = store.clinics_of_org(org).await?;
    let (Some(gad), Some(phq)) = (registry.current("gad7"), registry.current("phq9")) else {
        anyhow::bail!("GAD-7 and PHQ-9 must be loaded");
    };
    let now = store.now();
    let (mut responses, mut doses) = (0, 0);
    for clinic in &clinics {
        let glendale = clinic.slug == "stillwater-glendale";
        let patients = store.search_patients(&[clinic.id], "", 200).await?;
        let types = store.appointment_types(clinic.id).await?;
        let Some(iv) = types.iter().find(|t| t.code == "iv_infusion") else {
            continue;
        };
        let today = domain::time::to_timestamp(now)
            .to_zoned(jiff::tz::TimeZone::get(&clinic.settings.time_zone)?)
            .date();
        let cal = store.calendar(clinic.id, now, now + 40 * DAY, None).await?;
        let (templates, _) = cal.find_slots(
            &cal.occupancy,
            iv,
            PatientId::new(),
            today.checked_add(jiff::Span::new().days(14))?,
            today.checked_add(jiff::Span::new().days(35))?,
            &Preferences::default(),
            60,
        );
        let mut occ = store.claims_on(&[], 0, 0, None).await?;
        let history = if glendale { 10 } else { 5 };
        // The last patients of the list: the calendar books the first ones.
        for (k, p) in patients.iter().rev().take(history).enumerate() {
            let Some(template) = templates.get((k * 5) % templates.len().max(1)) else {
                break;
            };
            // Weekly infusions 16 to 11 weeks ago, then monthly maintenance,
            // placed on the template's weekday and time (shifted by whole weeks,
            // more than three weeks back so they come before the live calendar).
            let back_weeks = [19i64, 18, 17, 16, 15, 14, 10, 6];
            let mut new = vec![];
            let mut events = vec![];
            let mut dose_times = vec![];
            for w in back_weeks {
                let shift = (w + 3) * WEEK;
                let plan = shifted(template, -shift);
                let Some(claims) = plan_claims(&plan, p.id, &cal.rules, &occ) else {
                    continue;
                };
                claims.iter().for_each(|c| occ.add(c));
                let id = domain::ids::AppointmentId::new();
                events.push(event(
                    clinic.id,
                    p.id,
                    Action::AppointmentCreate,
                    "appointment",
                    id.to_string(),
                ));
                dose_times.push(plan.start);
                new.push(NewVisit {
                    id,
                    type_name: iv.name.clone(),
                    plan,
                    claims,
                    series_index: None,
                    series_role: None,
                });
            }
            store
                .insert_visits(clinic.id, p.id, None, &new, None, events, &[])
                .await?;
            for v in &new {
                let e = event(
                    clinic.id,
                    p.id,
                    Action::AppointmentUpdate,
                    "appointment",
                    v.id.to_string(),
                );
                store
                    .set_visit_status(v.id, Status::Completed, None, false, e)
                    .await?;
            }
            doses += new.len();
            // Scores: a baseline a week before the first dose, then weekly.
            let first = dose_times.iter().min().copied().unwrap_or(now - 20 * WEEK);
            let start = first - WEEK + (k as i64 % 3) * DAY;
            let weeks = ((now - start) / WEEK) as usize;
            let gad_path = trajectory(k, weeks);
            for (w, g) in gad_path.iter().enumerate() {
                let at = start + w as i64 * WEEK;
                // Staff enter the baseline at intake; later ones come by link.
                let source = if w == 0 { Source::Staff } else { Source::Link };
                let g_scored = gad.score(&spread(*g, 7, 3))?;
                // PHQ-9 runs a little above the GAD-7; item 9 stays 0 except
                // for one patient's most recent answer.
                let p_total = (*g + 2).min(26);
                let mut p_answers = spread(p_total, 8, 3);
                let risky = glendale && k == 4 && w + 1 == gad_path.len();
                p_answers.insert("9".into(), i32::from(risky));
                let p_scored = phq.score(&p_answers)?;
                for (inst, scored) in [(gad, &g_scored), (phq, &p_scored)] {
                    let id = ResponseId::new();
                    let task = scored.safety.then(|| NewTask {
                        id: TaskId::new(),
                        title: format!(
                            "{} answered through a link: thoughts of death or self-harm (item 9)",
                            inst.short_name
                        ),
                    });
                    let r = NewResponse {
                        id,
                        clinic: clinic.id,
                        patient: Some(p.id),
                        lead: None,
                        scored,
                        instrument_hash: &inst.hash,
                        source,
                        link: None,
                        appointment: None,
                        entered_by: None,
                        started_at: Some(at - 4 * 60_000_000),
                        submitted_at: at,
                    };
                    let ev = event(
                        clinic.id,
                        p.id,
                        Action::ResponseCreate,
                        "questionnaire_response",
                        id.to_string(),
                    );
                    store.insert_response(&r, task.as_ref(), vec![ev]).await?;
                    responses += 1;
                }
            }
        }
    }
    let leads = load_leads(store, registry, &clinics).await?;
    load_decisions(store, &clinics).await?;
    Ok((responses, doses, leads))
}

/// Eligibility at each stage in Glendale: eligible and signed off, eligible
/// with conditions awaiting sign-off, blocked by an exclusion, and waiting for
/// more information.
async fn load_decisions(store: &Store, clinics: &[store::org::Clinic]) -> anyhow::Result<()> {
    use domain::eligibility::{
        decide, Condition, DecisionInput, Facts, Medication, Policy, Suggestion, Trial,
    };
    let Some(clinic) = clinics.iter().find(|c| c.slug == "stillwater-glendale") else {
        return Ok(());
    };
    let (Some(paul), Some(nina)) = (
        store.user_id_by_username("paul.prescriber").await?,
        store.user_id_by_username("nina.nurse").await?,
    ) else {
        return Ok(());
    };
    let patients = store.search_patients(&[clinic.id], "", 200).await?;
    let trials = |n: usize| -> Vec<Trial> {
        ["sertraline", "escitalopram", "venlafaxine"]
            .iter()
            .take(n)
            .map(|t| Trial {
                treatment: t.to_string(),
                adequate_dose: true,
                weeks: 10,
            })
            .collect()
    };
    let cases: Vec<(Facts, Suggestion, &str, &str, bool)> = vec![
        (
            Facts { trials: trials(2), blood_pressure: Some((126, 80)), ..Default::default() },
            Suggestion::Eligible,
            "",
            "Two adequate SSRI trials without remission: treatment-resistant GAD; no exclusions.",
            true,
        ),
        (
            Facts {
                trials: trials(3),
                medications: vec![Medication { name: "clonazepam".into(), daily_mg: Some(2.0) }],
                blood_pressure: Some((134, 86)),
                ..Default::default()
            },
            Suggestion::EligibleWithConditions,
            "Taper clonazepam to 1 mg/day before the first infusion; no clonazepam on dosing mornings.",
            "Three adequate trials (treatment-resistant); benzodiazepine load will blunt response.",
            false,
        ),
        (
            Facts { conditions: vec![Condition::KetamineCystitis], trials: trials(2), ..Default::default() },
            Suggestion::NotEligible,
            "",
            "History of ketamine cystitis: refer back to the GP for other treatment options.",
            true,
        ),
        (
            Facts { unknown: vec![Condition::PregnancyOrBreastfeeding], trials: trials(1), ..Default::default() },
            Suggestion::NeedsMoreInformation,
            "",
            "Pregnancy test and records of the second medication trial requested.",
            false,
        ),
    ];
    for (p, (facts, decision, conditions, rationale, sign)) in patients.iter().skip(12).zip(cases) {
        let d = decide(
            DecisionInput {
                facts,
                decision,
                conditions: conditions.into(),
                rationale: rationale.into(),
            },
            &Policy::default(),
        )?;
        let ev = event(
            clinic.id,
            p.id,
            Action::EligibilityDecide,
            "eligibility_decision",
            p.id.to_string(),
        );
        let version = store.insert_decision(clinic.id, p.id, &d, paul, ev).await?;
        if sign {
            let ev = event(
                clinic.id,
                p.id,
                Action::EligibilitySignOff,
                "eligibility_decision",
                p.id.to_string(),
            );
            store.sign_off_decision(p.id, version, nina, ev).await?;
        }
    }
    Ok(())
}

fn shifted(p: &VisitPlan, by: i64) -> VisitPlan {
    let mut v = p.clone();
    v.start += by;
    v.end += by;
    for ph in &mut v.phases {
        ph.start += by;
        ph.end += by;
    }
    v
}

/// Leads through the real public use cases, then worked by "the desk".
async fn load_leads(
    store: &Store,
    registry: &Registry,
    clinics: &[store::org::Clinic],
) -> anyhow::Result<usize> {
    let cfg = clinic::Config {
        public_per_minute: 10_000,
        ..Default::default()
    };
    let state = clinic::Clinic::new(store.clone(), cfg).with_instruments(registry.clone());
    let meta = clinic::actor::RequestMeta {
        request_id: "demo".into(),
        source_ip: Some("cli".into()),
        htmx: false,
    };
    // (clinic, first, last, gad7, phq 1/2/9, treatments, exclusions, what happens next)
    type LeadSpec = (
        usize,
        &'static str,
        &'static str,
        i32,
        [i32; 3],
        &'static [&'static str],
        &'static [&'static str],
        LeadStatus,
    );
    let specs: [LeadSpec; 10] = [
        (
            0,
            "Hollis",
            "Brandt",
            16,
            [2, 2, 0],
            &["ssri_snri", "benzodiazepine", "cbt"],
            &[],
            LeadStatus::New,
        ),
        (
            0,
            "Mireille",
            "Okafor",
            12,
            [1, 2, 1],
            &["ssri_snri"],
            &[],
            LeadStatus::New,
        ),
        (
            0,
            "Tobias",
            "Varga",
            8,
            [1, 0, 0],
            &["cbt"],
            &["blood_pressure"],
            LeadStatus::New,
        ),
        (
            0,
            "Renata",
            "Solberg",
            18,
            [2, 2, 0],
            &["ssri_snri", "buspirone"],
            &[],
            LeadStatus::Contacted,
        ),
        (
            0,
            "Idris",
            "Mendoza",
            15,
            [1, 1, 0],
            &["ssri_snri", "cbt"],
            &[],
            LeadStatus::ConsultationBooked,
        ),
        (
            0,
            "Clementine",
            "Auer",
            3,
            [0, 1, 0],
            &[],
            &[],
            LeadStatus::Declined,
        ),
        (
            0,
            "Yusuf",
            "Lindqvist",
            19,
            [2, 3, 0],
            &["ssri_snri", "other_medication", "other_therapy"],
            &[],
            LeadStatus::BecamePatient,
        ),
        (
            1,
            "Annika",
            "Delacroix",
            14,
            [1, 1, 0],
            &["benzodiazepine", "cbt"],
            &[],
            LeadStatus::New,
        ),
        (
            1,
            "Marcus",
            "Whitfield",
            17,
            [2, 1, 0],
            &["ssri_snri", "cbt"],
            &["pregnancy"],
            LeadStatus::Declined,
        ),
        (
            1,
            "Priya",
            "Castellanos",
            13,
            [1, 1, 0],
            &["ssri_snri", "cbt"],
            &[],
            LeadStatus::ConsultationBooked,
        ),
    ];
    let mut made = 0;
    for (n, (ci, first, last, gad, phq, treat, excl, next)) in specs.into_iter().enumerate() {
        // 0 is Glendale, 1 is Denver.
        let slug = ["stillwater-glendale", "stillwater-denver"][ci];
        let Some(clinic) = clinics.iter().find(|c| c.slug == slug) else {
            continue;
        };
        let input = AssessmentInput {
            gad7: spread(gad, 7, 3),
            phq2: [("1", phq[0]), ("2", phq[1]), ("9", phq[2])]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            conditions: vec![
                "gad".into(),
                ["panic", "social_anxiety", "ptsd", "depression"][n % 4].into(),
            ],
            treatments: treat.iter().map(|s| s.to_string()).collect(),
            exclusions: excl.iter().map(|s| s.to_string()).collect(),
            no_exclusions: excl.is_empty(),
            given_name: Some(first.into()),
            family_name: Some(last.into()),
            email: Some(format!(
                "{}.{}@example.org",
                first.to_lowercase(),
                last.to_lowercase()
            )),
            phone: Some(format!("(602) 555-{:04}", 3100 + n * 17)),
            date_of_birth: Some(format!("{}-0{}-1{}", 1970 + n * 3, 1 + n % 9, n % 10)),
            consent_to_contact: true,
            website: None,
        };
        let s = clinic::leads::submit(&state, &meta, clinic, &input)
            .await
            .map_err(|e| anyhow::anyhow!("demo lead: {e:?}"))?;
        made += 1;
        let desk = |a: Action| {
            let mut e = NewAuditEvent::new(a, "demo-loader");
            e.clinic_id = Some(clinic.id.to_string());
            e.object_type = Some("lead".into());
            e.object_id = Some(s.lead.to_string());
            e
        };
        match next {
            LeadStatus::New => {}
            LeadStatus::Contacted | LeadStatus::Declined => {
                let note = if next == LeadStatus::Declined {
                    "Called back; not going ahead for now."
                } else {
                    "Left a voicemail; will try again tomorrow."
                };
                store
                    .set_lead_status(s.lead, next, Some(note), desk(Action::LeadUpdate))
                    .await?;
            }
            LeadStatus::ConsultationBooked | LeadStatus::BecamePatient => {
                // Every other lead chose to meet by video.
                let how = (n % 2 == 1).then_some("consultation_video");
                let (_, slots) = clinic::leads::public_slots(&state, clinic, how, 40)
                    .await
                    .map_err(|e| anyhow::anyhow!("demo slots: {e:?}"))?;
                let Some(start) = slots.get(3 + n).or(slots.first()) else {
                    continue;
                };
                clinic::leads::book(&state, &meta, clinic, &s.token, how, *start)
                    .await
                    .map_err(|e| anyhow::anyhow!("demo booking: {e:?}"))?;
                if next == LeadStatus::BecamePatient {
                    let lead = store
                        .lead(s.lead, &[clinic.id])
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("demo lead vanished"))?;
                    let details = store
                        .patient(lead.patient_id.unwrap_or_default(), &[clinic.id])
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("demo lead has no patient"))?
                        .details;
                    let admin = store
                        .user_id_by_username("dana.frontdesk")
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("no front desk user"))?;
                    store
                        .convert_lead(
                            &lead,
                            clinic.org_id,
                            &details,
                            admin,
                            desk(Action::LeadConvert),
                        )
                        .await?;
                }
            }
        }
    }
    Ok(made)
}
