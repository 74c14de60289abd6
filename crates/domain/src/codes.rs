//! Coded lists a clinician picks from: ICD-10-CM diagnoses (the CMS
//! release, `data/icd10cm.tsv`, made by `scripts/icd10cm-import`) and the
//! medicines the eligibility rules know by generic and brand name, each
//! with its class.

use std::sync::OnceLock;

use crate::eligibility::DrugClass;

/// The ICD-10-CM codes valid on a claim, as released by CMS.
static ICD10CM: &str = include_str!("../data/icd10cm.tsv");

/// One ICD-10-CM code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icd10 {
    /// With its dot, e.g. `F41.1`.
    pub code: &'static str,
    pub description: &'static str,
}

struct Indexed {
    entry: Icd10,
    /// The code without its dot, lower case (`f411`).
    bare: String,
    /// The description in lower case, for word search.
    words: String,
}

fn icd10() -> &'static [Indexed] {
    static LIST: OnceLock<Vec<Indexed>> = OnceLock::new();
    LIST.get_or_init(|| {
        ICD10CM
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('\t'))
            .map(|(code, description)| Indexed {
                entry: Icd10 { code, description },
                bare: code.replace('.', "").to_lowercase(),
                words: description.to_lowercase(),
            })
            .collect()
    })
}

/// The release the list comes from (its first line).
pub fn icd10_release() -> &'static str {
    ICD10CM
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# "))
        .unwrap_or("ICD-10-CM")
}

/// The code as released (`f41.1`, `F411` and ` F41.1 ` all find `F41.1`),
/// when it is a code valid on a claim.
pub fn icd10_lookup(code: &str) -> Option<Icd10> {
    let bare = code.trim().replace('.', "").to_lowercase();
    if bare.is_empty() {
        return None;
    }
    icd10().iter().find(|e| e.bare == bare).map(|e| e.entry)
}

/// True when `word` starts a word of `text` (both lower case).
fn starts_a_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        i == 0
            || !text[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric())
    })
}

/// Codes for what a clinician types: a code's beginning (`F41`, `f43.1`)
/// or words that begin words of the description (`generalized anx`).
/// Mental and behavioural codes (chapter F) come first, then those whose
/// description begins with the first word, then the shorter; at most
/// `limit`.
pub fn icd10_search(query: &str, limit: usize) -> Vec<Icd10> {
    let q = query.trim().to_lowercase();
    if q.is_empty() || limit == 0 {
        return vec![];
    }
    let list = icd10();
    let b = q.as_bytes();
    let code_like =
        b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1].is_ascii_digit() && !q.contains(' ');
    if code_like {
        let bare = q.replace('.', "");
        return list
            .iter()
            .filter(|e| e.bare.starts_with(&bare))
            .take(limit)
            .map(|e| e.entry)
            .collect();
    }
    let words: Vec<&str> = q
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return vec![];
    }
    let mut hits: Vec<&Indexed> = list
        .iter()
        .filter(|e| words.iter().all(|w| starts_a_word(&e.words, w)))
        .collect();
    hits.sort_by_key(|e| {
        (
            !e.entry.code.starts_with('F'),
            !e.words.starts_with(words[0]),
            e.words.len(),
        )
    });
    hits.into_iter().take(limit).map(|e| e.entry).collect()
}

/// A medicine the rules know: its generic name, the brand names it is
/// sold under, its class in words, and the class the interaction rules use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Medicine {
    pub name: &'static str,
    pub brands: &'static [&'static str],
    /// In words, e.g. "SSRI antidepressant".
    pub class: &'static str,
    pub rule: DrugClass,
    /// For benzodiazepines, the milligrams equal to 1 mg of lorazepam
    /// (approximate equivalences); 0 otherwise.
    pub lorazepam_mg: f64,
}

const fn m(
    name: &'static str,
    brands: &'static [&'static str],
    class: &'static str,
    rule: DrugClass,
    lorazepam_mg: f64,
) -> Medicine {
    Medicine {
        name,
        brands,
        class,
        rule,
        lorazepam_mg,
    }
}

use DrugClass::*;

const BENZO: &str = "benzodiazepine";
const SSRI: &str = "SSRI antidepressant";
const SNRI: &str = "SNRI antidepressant";
const TCA: &str = "tricyclic antidepressant";
const AP: &str = "antipsychotic";
const STIM: &str = "stimulant";
const OPIOID: &str = "opioid";
const MAOI: &str = "MAOI antidepressant";

/// The medicines clinics meet most in people treated for anxiety and
/// depression, and those the interaction rules (DOMAIN.md) name.
pub const MEDICINES: &[Medicine] = &[
    // Benzodiazepines: lorazepam equivalents (approximate).
    m("lorazepam", &["ativan"], BENZO, Benzodiazepine, 1.0),
    m("alprazolam", &["xanax"], BENZO, Benzodiazepine, 0.5),
    m("clonazepam", &["klonopin"], BENZO, Benzodiazepine, 0.5),
    m("diazepam", &["valium"], BENZO, Benzodiazepine, 10.0),
    m(
        "chlordiazepoxide",
        &["librium"],
        BENZO,
        Benzodiazepine,
        25.0,
    ),
    m("temazepam", &["restoril"], BENZO, Benzodiazepine, 20.0),
    m("oxazepam", &[], BENZO, Benzodiazepine, 20.0),
    m("clorazepate", &["tranxene"], BENZO, Benzodiazepine, 15.0),
    m(
        "clobazam",
        &["onfi", "sympazan"],
        BENZO,
        Benzodiazepine,
        20.0,
    ),
    m("triazolam", &["halcion"], BENZO, Benzodiazepine, 0.5),
    // Lamotrigine blunts ketamine's effect.
    m(
        "lamotrigine",
        &["lamictal"],
        "anticonvulsant, mood stabilizer",
        Lamotrigine,
        0.0,
    ),
    // Stimulants raise blood pressure and heart rate with ketamine.
    m("amphetamine", &["adzenys", "evekeo"], STIM, Stimulant, 0.0),
    m(
        "dextroamphetamine",
        &["dexedrine", "zenzedi"],
        STIM,
        Stimulant,
        0.0,
    ),
    m(
        "amphetamine salts",
        &["adderall", "mydayis"],
        STIM,
        Stimulant,
        0.0,
    ),
    m("lisdexamfetamine", &["vyvanse"], STIM, Stimulant, 0.0),
    m(
        "methylphenidate",
        &["ritalin", "concerta", "methylin", "quillichew"],
        STIM,
        Stimulant,
        0.0,
    ),
    m("dexmethylphenidate", &["focalin"], STIM, Stimulant, 0.0),
    m("methamphetamine", &["desoxyn"], STIM, Stimulant, 0.0),
    m(
        "modafinil",
        &["provigil"],
        "wakefulness agent",
        Stimulant,
        0.0,
    ),
    m(
        "armodafinil",
        &["nuvigil"],
        "wakefulness agent",
        Stimulant,
        0.0,
    ),
    // MAOIs.
    m("phenelzine", &["nardil"], MAOI, Maoi, 0.0),
    m("tranylcypromine", &["parnate"], MAOI, Maoi, 0.0),
    m("isocarboxazid", &["marplan"], MAOI, Maoi, 0.0),
    m(
        "selegiline",
        &["emsam", "zelapar", "eldepryl"],
        MAOI,
        Maoi,
        0.0,
    ),
    // Opioids.
    m(
        "oxycodone",
        &["oxycontin", "roxicodone", "percocet"],
        OPIOID,
        Opioid,
        0.0,
    ),
    m(
        "hydrocodone",
        &["norco", "vicodin", "hysingla"],
        OPIOID,
        Opioid,
        0.0,
    ),
    m("morphine", &["ms contin"], OPIOID, Opioid, 0.0),
    m("hydromorphone", &["dilaudid"], OPIOID, Opioid, 0.0),
    m("fentanyl", &["duragesic"], OPIOID, Opioid, 0.0),
    m(
        "methadone",
        &["dolophine", "methadose"],
        OPIOID,
        Opioid,
        0.0,
    ),
    m(
        "buprenorphine",
        &["suboxone", "subutex", "sublocade", "butrans"],
        OPIOID,
        Opioid,
        0.0,
    ),
    m("tramadol", &["ultram"], OPIOID, Opioid, 0.0),
    m("tapentadol", &["nucynta"], OPIOID, Opioid, 0.0),
    m("codeine", &[], OPIOID, Opioid, 0.0),
    // Other sedatives add to ketamine's sedation.
    m(
        "zolpidem",
        &["ambien"],
        "sedative-hypnotic",
        OtherSedative,
        0.0,
    ),
    m(
        "eszopiclone",
        &["lunesta"],
        "sedative-hypnotic",
        OtherSedative,
        0.0,
    ),
    m(
        "zaleplon",
        &["sonata"],
        "sedative-hypnotic",
        OtherSedative,
        0.0,
    ),
    m("quetiapine", &["seroquel"], AP, OtherSedative, 0.0),
    m(
        "gabapentin",
        &["neurontin"],
        "gabapentinoid",
        OtherSedative,
        0.0,
    ),
    m(
        "pregabalin",
        &["lyrica"],
        "gabapentinoid",
        OtherSedative,
        0.0,
    ),
    m(
        "hydroxyzine",
        &["vistaril", "atarax"],
        "sedating antihistamine",
        OtherSedative,
        0.0,
    ),
    m(
        "trazodone",
        &["desyrel"],
        "sedating antidepressant",
        OtherSedative,
        0.0,
    ),
    m(
        "mirtazapine",
        &["remeron"],
        "sedating antidepressant",
        OtherSedative,
        0.0,
    ),
    m("phenobarbital", &[], "barbiturate", OtherSedative, 0.0),
    m(
        "butalbital",
        &["fioricet"],
        "barbiturate",
        OtherSedative,
        0.0,
    ),
    // Enzyme inhibitors raise ketamine levels; inducers lower them.
    m(
        "clarithromycin",
        &["biaxin"],
        "macrolide antibiotic, CYP3A4 inhibitor",
        Cyp3a4Or2b6Inhibitor,
        0.0,
    ),
    m(
        "ketoconazole",
        &[],
        "azole antifungal, CYP3A4 inhibitor",
        Cyp3a4Or2b6Inhibitor,
        0.0,
    ),
    m(
        "itraconazole",
        &["sporanox"],
        "azole antifungal, CYP3A4 inhibitor",
        Cyp3a4Or2b6Inhibitor,
        0.0,
    ),
    m(
        "ritonavir",
        &["norvir", "paxlovid"],
        "antiviral, CYP3A4 inhibitor",
        Cyp3a4Or2b6Inhibitor,
        0.0,
    ),
    m(
        "ticlopidine",
        &[],
        "antiplatelet, CYP2B6 inhibitor",
        Cyp3a4Or2b6Inhibitor,
        0.0,
    ),
    m(
        "rifampin",
        &["rifadin"],
        "antibiotic, CYP3A4 inducer",
        Cyp3a4Or2b6Inducer,
        0.0,
    ),
    m(
        "carbamazepine",
        &["tegretol", "equetro"],
        "anticonvulsant, CYP3A4 inducer",
        Cyp3a4Or2b6Inducer,
        0.0,
    ),
    m(
        "phenytoin",
        &["dilantin"],
        "anticonvulsant, CYP3A4 inducer",
        Cyp3a4Or2b6Inducer,
        0.0,
    ),
    m(
        "st john's wort",
        &[],
        "herbal, CYP3A4 inducer",
        Cyp3a4Or2b6Inducer,
        0.0,
    ),
    // Antidepressants and others with no ketamine rule of their own.
    m("sertraline", &["zoloft"], SSRI, Other, 0.0),
    m("escitalopram", &["lexapro"], SSRI, Other, 0.0),
    m("citalopram", &["celexa"], SSRI, Other, 0.0),
    m("fluoxetine", &["prozac"], SSRI, Other, 0.0),
    m("paroxetine", &["paxil", "pexeva"], SSRI, Other, 0.0),
    m("fluvoxamine", &["luvox"], SSRI, Other, 0.0),
    m("venlafaxine", &["effexor"], SNRI, Other, 0.0),
    m("desvenlafaxine", &["pristiq"], SNRI, Other, 0.0),
    m("duloxetine", &["cymbalta"], SNRI, Other, 0.0),
    m("levomilnacipran", &["fetzima"], SNRI, Other, 0.0),
    m(
        "bupropion",
        &["wellbutrin", "zyban"],
        "NDRI antidepressant",
        Other,
        0.0,
    ),
    m(
        "vortioxetine",
        &["trintellix"],
        "serotonin modulator antidepressant",
        Other,
        0.0,
    ),
    m(
        "vilazodone",
        &["viibryd"],
        "serotonin modulator antidepressant",
        Other,
        0.0,
    ),
    m("amitriptyline", &["elavil"], TCA, Other, 0.0),
    m("nortriptyline", &["pamelor"], TCA, Other, 0.0),
    m("imipramine", &["tofranil"], TCA, Other, 0.0),
    m("clomipramine", &["anafranil"], TCA, Other, 0.0),
    m("doxepin", &["silenor"], TCA, Other, 0.0),
    m(
        "buspirone",
        &["buspar"],
        "anxiolytic (azapirone)",
        Other,
        0.0,
    ),
    m("esketamine", &["spravato"], "NMDA antagonist", Other, 0.0),
    m("lithium", &["lithobid"], "mood stabilizer", Other, 0.0),
    m(
        "valproate",
        &["depakote", "divalproex"],
        "anticonvulsant, mood stabilizer",
        Other,
        0.0,
    ),
    m("topiramate", &["topamax"], "anticonvulsant", Other, 0.0),
    m("aripiprazole", &["abilify"], AP, Other, 0.0),
    m("brexpiprazole", &["rexulti"], AP, Other, 0.0),
    m("cariprazine", &["vraylar"], AP, Other, 0.0),
    m("lurasidone", &["latuda"], AP, Other, 0.0),
    m("olanzapine", &["zyprexa"], AP, Other, 0.0),
    m("risperidone", &["risperdal"], AP, Other, 0.0),
    m("lumateperone", &["caplyta"], AP, Other, 0.0),
    m("propranolol", &["inderal"], "beta blocker", Other, 0.0),
    m(
        "clonidine",
        &["catapres", "kapvay"],
        "alpha-2 agonist",
        Other,
        0.0,
    ),
    m(
        "guanfacine",
        &["intuniv", "tenex"],
        "alpha-2 agonist",
        Other,
        0.0,
    ),
    m("prazosin", &["minipress"], "alpha-1 blocker", Other, 0.0),
    m(
        "naltrexone",
        &["vivitrol", "revia"],
        "opioid antagonist",
        Other,
        0.0,
    ),
    m("ondansetron", &["zofran"], "antiemetic", Other, 0.0),
    m(
        "levothyroxine",
        &["synthroid"],
        "thyroid hormone",
        Other,
        0.0,
    ),
];

/// The medicine a line names by generic or brand name (case-insensitive),
/// the name alone or followed by more words ("Klonopin 2 mg").
pub fn medicine(name: &str) -> Option<&'static Medicine> {
    let n = name.trim().to_lowercase();
    let names = |x: &'static Medicine| std::iter::once(x.name).chain(x.brands.iter().copied());
    // The longest name that fits, so "amphetamine salts" wins over
    // "amphetamine".
    MEDICINES
        .iter()
        .flat_map(|x| names(x).map(move |k| (k, x)))
        .filter(|(k, _)| {
            n == *k
                || n.strip_prefix(k)
                    .is_some_and(|rest| rest.starts_with([' ', ',', '(']))
        })
        .max_by_key(|(k, _)| k.len())
        .map(|(_, x)| x)
}

/// Medicines whose generic or brand name begins with what was typed (or a
/// word of it), generic-name matches first; at most `limit`.
pub fn medicine_search(query: &str, limit: usize) -> Vec<&'static Medicine> {
    let q = query.trim().to_lowercase();
    if q.is_empty() {
        return vec![];
    }
    let mut hits: Vec<(u8, &'static Medicine)> = MEDICINES
        .iter()
        .filter_map(|x| {
            if starts_a_word(x.name, &q) {
                Some((0, x))
            } else if x.brands.iter().any(|b| starts_a_word(b, &q)) {
                Some((1, x))
            } else {
                None
            }
        })
        .collect();
    hits.sort_by_key(|(rank, x)| (*rank, x.name));
    hits.into_iter().take(limit).map(|(_, x)| x).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icd10_codes_are_found_by_code_and_by_words() {
        assert_eq!(
            icd10_lookup(" f41.1 ").map(|e| e.description),
            Some("Generalized anxiety disorder")
        );
        assert_eq!(icd10_lookup("F411").map(|e| e.code), Some("F41.1"));
        // A category is not a code valid on a claim.
        assert_eq!(icd10_lookup("F41"), None);
        assert_eq!(icd10_lookup("F41.19"), None);
        assert_eq!(icd10_lookup(""), None);
        let by_code: Vec<_> = icd10_search("F41", 10).iter().map(|e| e.code).collect();
        assert_eq!(by_code, ["F41.0", "F41.1", "F41.3", "F41.8", "F41.9"]);
        let by_words = icd10_search("generalized anx", 5);
        assert_eq!(by_words[0].code, "F41.1", "{by_words:?}");
        // Chapter F first: "panic" finds panic disorder before anything else.
        assert_eq!(icd10_search("panic", 1)[0].code, "F41.0");
        let ptsd = icd10_search("post-traumatic stress", 10);
        assert!(ptsd.iter().any(|e| e.code == "F43.10"), "{ptsd:?}");
        // Words start words: "tens" is not found inside "hypertension".
        assert!(icd10_search("tens", 50).iter().all(|e| !e
            .description
            .to_lowercase()
            .contains("hypertension")
            || e.description.to_lowercase().contains(" tens")));
        assert!(icd10_search("  ", 5).is_empty());
        assert!(icd10_search("zzqx", 5).is_empty());
        assert!(icd10_release().contains("ICD-10-CM"));
    }

    #[test]
    fn medicines_are_found_by_generic_and_brand_name() {
        let k = medicine("Klonopin 2 mg").unwrap();
        assert_eq!((k.name, k.rule), ("clonazepam", Benzodiazepine));
        assert_eq!(medicine("Adderall XR").unwrap().name, "amphetamine salts");
        assert_eq!(medicine("amphetamine").unwrap().name, "amphetamine");
        assert_eq!(medicine("sertraline").unwrap().class, SSRI);
        assert!(medicine("sertralinex").is_none());
        assert!(medicine("").is_none());
        let s: Vec<_> = medicine_search("clo", 10).iter().map(|x| x.name).collect();
        assert!(
            s.starts_with(&["clobazam", "clomipramine", "clonazepam"]),
            "{s:?}"
        );
        assert_eq!(medicine_search("xan", 5)[0].name, "alprazolam");
        // Every name is written once, in lower case.
        let mut all: Vec<&str> = MEDICINES
            .iter()
            .flat_map(|x| std::iter::once(x.name).chain(x.brands.iter().copied()))
            .collect();
        assert!(all.iter().all(|n| *n == n.to_lowercase()));
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a name twice");
        for x in MEDICINES {
            assert_eq!(
                x.lorazepam_mg > 0.0,
                x.rule == Benzodiazepine,
                "{}: an equivalence for benzodiazepines only",
                x.name
            );
        }
    }
}
