//! PDFs of signed documents (lopdf): US Letter pages in the standard
//! Helvetica fonts (WinAnsi encoding, nothing embedded), the text wrapped to
//! the page, headings in bold, and a closing block that says who signed what
//! and when. Text a PDF cannot print in WinAnsi is refused before a document
//! is published, so a PDF always holds exactly what was signed.

use lopdf::content::{Content, Operation};
use lopdf::{dictionary, Document, Encoding, Object, Stream};

const PAGE_W: f64 = 612.0;
const PAGE_H: f64 = 792.0;
const MARGIN: f64 = 60.0;
const WIN_ANSI: Encoding<'static> = Encoding::SimpleEncoding(b"WinAnsiEncoding");

/// The first character of `text` that the PDF fonts cannot print, if any.
pub fn unprintable(text: &str) -> Option<char> {
    text.chars().find(|c| {
        if *c == '\n' {
            return false;
        }
        let mut buf = [0u8; 4];
        let s = c.encode_utf8(&mut buf);
        Document::encode_text(&WIN_ANSI, s).len() != 1
    })
}

/// Helvetica's advance widths in thousandths of an em, close enough to
/// wrap lines safely (wide letters counted wide).
fn width(c: char, bold: bool) -> f64 {
    let w = match c {
        'i' | 'j' | 'l' | '\'' | '|' => 222.0,
        ' ' | '.' | ',' | ':' | ';' | '!' | 'f' | 't' | 'I' | '/' | '(' | ')' | '[' | ']' => 278.0,
        'r' | '-' | '"' => 333.0,
        'm' | 'M' => 833.0,
        'w' | 'W' => 944.0,
        'A'..='Z' | '%' | '&' => 722.0,
        _ => 556.0,
    };
    if bold {
        w * 1.08
    } else {
        w
    }
}

fn wrap(text: &str, size: f64, bold: bool) -> Vec<String> {
    let max = (PAGE_W - 2.0 * MARGIN) * 1000.0 / size;
    let mut lines = vec![];
    for para in text.split('\n') {
        let mut line = String::new();
        let mut w = 0.0;
        for word in para.split(' ') {
            let ww: f64 = word.chars().map(|c| width(c, bold)).sum();
            let space = width(' ', bold);
            if !line.is_empty() && w + ww > max {
                // The space stays at the end of the line, so text extracted
                // from the PDF reads as the words were written.
                lines.push(std::mem::take(&mut line));
                w = 0.0;
            }
            line.push_str(word);
            line.push(' ');
            w += ww + space;
        }
        if line.ends_with(' ') {
            line.pop();
        }
        lines.push(line);
    }
    lines
}

/// One block of the page: text in a style, with space before it.
pub struct Block {
    pub text: String,
    pub size: f64,
    pub bold: bool,
    pub space_before: f64,
}

impl Block {
    pub fn heading(t: &str) -> Block {
        Block {
            text: t.to_string(),
            size: 12.0,
            bold: true,
            space_before: 10.0,
        }
    }
    pub fn title(t: &str) -> Block {
        Block {
            text: t.to_string(),
            size: 16.0,
            bold: true,
            space_before: 0.0,
        }
    }
    pub fn body(t: &str) -> Block {
        Block {
            text: t.to_string(),
            size: 10.0,
            bold: false,
            space_before: 4.0,
        }
    }
    pub fn small(t: &str) -> Block {
        Block {
            text: t.to_string(),
            size: 8.5,
            bold: false,
            space_before: 2.0,
        }
    }
}

/// Lays the blocks out over as many pages as they need; each page carries
/// `footer` and its number.
pub fn render(blocks: &[Block], footer: &str) -> Result<Vec<u8>, String> {
    let mut pages: Vec<Vec<Operation>> = vec![vec![]];
    let mut y = PAGE_H - MARGIN;
    for b in blocks {
        let lead = b.size * 1.3;
        y -= b.space_before;
        for line in wrap(&b.text, b.size, b.bold) {
            if y - lead < MARGIN + 20.0 {
                pages.push(vec![]);
                y = PAGE_H - MARGIN;
            }
            y -= lead;
            let ops = pages.last_mut().ok_or("no page")?;
            ops.push(Operation::new("BT", vec![]));
            ops.push(Operation::new(
                "Tf",
                vec![if b.bold { "F2" } else { "F1" }.into(), b.size.into()],
            ));
            ops.push(Operation::new("Td", vec![MARGIN.into(), y.into()]));
            ops.push(Operation::new(
                "Tj",
                vec![Object::string_literal(Document::encode_text(
                    &WIN_ANSI, &line,
                ))],
            ));
            ops.push(Operation::new("ET", vec![]));
        }
    }
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font = |name: &str| {
        dictionary! {
            "Type" => "Font",
            "Subtype" => "Type1",
            "BaseFont" => name.to_string(),
            "Encoding" => "WinAnsiEncoding",
        }
    };
    let f1 = doc.add_object(font("Helvetica"));
    let f2 = doc.add_object(font("Helvetica-Bold"));
    let resources = doc.add_object(dictionary! {
        "Font" => dictionary! { "F1" => f1, "F2" => f2 },
    });
    let n = pages.len();
    let mut kids = vec![];
    for (i, mut ops) in pages.into_iter().enumerate() {
        let foot = format!("{footer}    Page {} of {n}", i + 1);
        ops.push(Operation::new("BT", vec![]));
        ops.push(Operation::new("Tf", vec!["F1".into(), 7.5.into()]));
        ops.push(Operation::new(
            "Td",
            vec![MARGIN.into(), (MARGIN - 10.0).into()],
        ));
        ops.push(Operation::new(
            "Tj",
            vec![Object::string_literal(Document::encode_text(
                &WIN_ANSI, &foot,
            ))],
        ));
        ops.push(Operation::new("ET", vec![]));
        let content = Content { operations: ops }
            .encode()
            .map_err(|e| e.to_string())?;
        let c = doc.add_object(Stream::new(dictionary! {}, content));
        let page = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => c,
        });
        kids.push(page.into());
    }
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => n as i64,
            "Resources" => resources,
            "MediaBox" => vec![0.into(), 0.into(), PAGE_W.into(), PAGE_H.into()],
        }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    doc.compress();
    let mut out = Vec::new();
    doc.save_to(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}
