//! Output formats shared by every command: Go-style tables, JSON and YAML.

use serde::Serialize;

/// `-o` values. Each command accepts a subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Yaml,
    Text,
}

impl Format {
    /// Parses `-o`, allowing only `allowed`; Go's error text otherwise.
    pub fn parse(value: &str, allowed: &[Format]) -> anyhow::Result<Format> {
        let f = match value {
            "table" => Format::Table,
            "json" => Format::Json,
            "yaml" => Format::Yaml,
            "text" => Format::Text,
            _ => anyhow::bail!("unsupported output {value:?}"),
        };
        anyhow::ensure!(allowed.contains(&f), "unsupported output {value:?}");
        Ok(f)
    }
}

/// Go's tabwriter with padding 2: columns as wide as their widest cell plus two spaces; the
/// last cell of a line is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let lines: Vec<Vec<&str>> = std::iter::once(header.to_vec())
        .chain(rows.iter().map(|r| r.iter().map(String::as_str).collect()))
        .collect();
    let cols = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            lines
                .iter()
                .filter_map(|l| l.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in &lines {
        for (c, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if c + 1 < line.len() {
                out.push_str(&" ".repeat(widths[c] - cell.chars().count() + 2));
            }
        }
        out.push('\n');
    }
    out
}

/// `-` for empty cells, as Go's `displayCell`.
pub fn cell(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.into()
    }
}

/// 2-space indented JSON with a trailing newline.
pub fn json<T: Serialize + ?Sized>(value: &T) -> String {
    let mut s = serde_json::to_string_pretty(value).expect("output always encodes");
    s.push('\n');
    s
}

/// YAML of structs printed the way Go's yaml.v3 names untagged struct fields: all lowercase.
/// Only struct keys are lowered; map keys (a payload) keep their case.
pub fn yaml_go_fields<T: Serialize>(items: &[T]) -> String {
    let lowered: Vec<serde_yaml::Value> = items
        .iter()
        .map(
            |item| match serde_yaml::to_value(item).expect("output always encodes") {
                serde_yaml::Value::Mapping(m) => serde_yaml::Value::Mapping(
                    m.into_iter()
                        .map(|(k, v)| (k.as_str().map(|s| s.to_lowercase().into()).unwrap_or(k), v))
                        .collect(),
                ),
                other => other,
            },
        )
        .collect();
    yaml(&lowered)
}

pub fn yaml<T: Serialize + ?Sized>(value: &T) -> String {
    serde_yaml::to_string(value).expect("output always encodes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_by_two_and_leaves_the_last_cell_alone() {
        let t = table(
            &["ID", "GROUP"],
            &[vec!["evt-1".into(), "cloudedge".into()]],
        );
        assert_eq!(t, "ID     GROUP\nevt-1  cloudedge\n");
    }

    #[test]
    fn formats_are_checked_against_what_the_command_allows() {
        assert_eq!(
            Format::parse("json", &[Format::Table, Format::Json]).unwrap(),
            Format::Json
        );
        assert_eq!(
            Format::parse("xml", &[Format::Json])
                .unwrap_err()
                .to_string(),
            "unsupported output \"xml\""
        );
        assert!(Format::parse("yaml", &[Format::Json]).is_err());
    }

    #[test]
    fn yaml_lowers_struct_keys_only() {
        #[derive(Serialize)]
        struct Row {
            #[serde(rename = "SourceNode")]
            source_node: &'static str,
            #[serde(rename = "Payload")]
            payload: std::collections::BTreeMap<&'static str, &'static str>,
        }
        let y = yaml_go_fields(&[Row {
            source_node: "a",
            payload: [("ownerSide", "onprem")].into(),
        }]);
        assert!(
            y.contains("sourcenode: a") && y.contains("ownerSide: onprem"),
            "{y}"
        );
    }
}
