//! Splitting a manifest file into documents, each parsed to a JSON value and
//! tagged with the line it starts on.

use std::borrow::Cow;

use serde_saphyr::MessageFormatter;

/// One document of a manifest file.
#[derive(Debug, PartialEq)]
pub(super) struct Document {
    /// 1-based line of the document's first content line.
    pub line: usize,
    /// The parsed document.
    pub value: serde_json::Value,
}

/// A document that does not parse.
#[derive(Debug, PartialEq)]
pub(super) struct SyntaxError {
    /// 1-based line of the error, or of the document when the parser gave none.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Parses a JSON file: one document.
pub(super) fn json_documents(text: &str) -> Vec<Result<Document, SyntaxError>> {
    let parsed = serde_json::from_str(text)
        .map(|value| Document { line: 1, value })
        .map_err(|e| SyntaxError {
            line: e.line().max(1),
            message: format!("JSON syntax: {}", strip_json_position(&e.to_string())),
        });
    vec![parsed]
}

/// serde_json appends ` at line L column C`; the line is reported separately.
fn strip_json_position(message: &str) -> &str {
    message.rsplit_once(" at line ").map_or(message, |(m, _)| m)
}

/// Splits YAML text on `---` lines and parses each non-empty document. The
/// `---` line stays with the document it opens, so the parser sees the same
/// line structure and its error lines map back by adding the chunk's offset.
pub(super) fn yaml_documents(text: &str) -> Vec<Result<Document, SyntaxError>> {
    let mut chunks: Vec<(usize, String)> = vec![(0, String::new())];
    for (index, line) in text.lines().enumerate() {
        if is_document_start(line) {
            chunks.push((index, String::new()));
        }
        let chunk = &mut chunks.last_mut().expect("one chunk at least").1;
        chunk.push_str(line);
        chunk.push('\n');
    }
    chunks
        .into_iter()
        .filter_map(|(offset, chunk)| {
            let first = chunk.lines().position(is_content)?;
            let line = offset + first + 1;
            Some(parse_yaml(&chunk, offset, line))
        })
        .collect()
}

fn is_document_start(line: &str) -> bool {
    line.strip_prefix("---")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

/// Whether a line holds anything besides a document marker, a directive, a
/// comment or blanks.
fn is_content(line: &str) -> bool {
    let line = line.strip_prefix("---").unwrap_or(line).trim();
    !(line.is_empty() || line.starts_with('#') || line.starts_with('%') || line == "...")
}

fn parse_yaml(chunk: &str, offset: usize, line: usize) -> Result<Document, SyntaxError> {
    serde_saphyr::from_str::<serde_json::Value>(chunk)
        .map(|value| Document { line, value })
        .map_err(|e| SyntaxError {
            line: e.location().map_or(line, |l| offset + l.line() as usize),
            message: format!("YAML syntax: {}", message(&e)),
        })
}

/// The parser's message without its location suffix or source snippet.
fn message(e: &serde_saphyr::Error) -> String {
    let text: Cow<'_, str> = serde_saphyr::UserMessageFormatter.format_message(e);
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_know_their_first_content_line() {
        let text = "# leading comment\n---\nkind: A\n---\n\n# only a comment\n--- # marker comment\n\nkind: B\n...\n";
        let docs: Vec<_> = yaml_documents(text)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            docs,
            [
                Document {
                    line: 3,
                    value: json!({"kind": "A"})
                },
                Document {
                    line: 9,
                    value: json!({"kind": "B"})
                },
            ]
        );
    }

    #[test]
    fn syntax_errors_point_at_the_file_line() {
        let text = "kind: A\n---\nkind: B\nspec:\n  a: [1, 2\n";
        let docs = yaml_documents(text);
        assert!(docs[0].is_ok());
        let err = docs[1].as_ref().unwrap_err();
        assert!((5..=6).contains(&err.line), "{err:?}");
        assert!(err.message.starts_with("YAML syntax: "), "{err:?}");
        assert!(!err.message.contains('\n'), "{err:?}");
    }

    #[test]
    fn json_files_are_one_document() {
        let docs = json_documents("{\"kind\": \"A\"}");
        assert_eq!(
            docs,
            [Ok(Document {
                line: 1,
                value: json!({"kind": "A"})
            })]
        );
        let err = json_documents("{\n\"kind\": }").pop().unwrap().unwrap_err();
        assert_eq!(err.line, 2);
        assert!(!err.message.contains("at line"), "{err:?}");
    }
}
