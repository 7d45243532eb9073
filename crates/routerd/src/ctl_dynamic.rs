//! `routerctl dynamic …`: stored parts and the effective config. Opens the state read-only.

use anyhow::Context;
use serde::Serialize;

use routerd_model::{gojson, DynamicConfigPart, Timestamp};

use crate::cli::{DeleteArgs, DescribeArgs, DynListArgs, DynamicCommand, RenderArgs};
use crate::output::{self, table, Format};

pub fn run(cmd: DynamicCommand) -> anyhow::Result<()> {
    match cmd {
        DynamicCommand::List(a) => list(&a),
        DynamicCommand::Describe(a) => describe(&a),
        DynamicCommand::Render(a) => render(&a),
        DynamicCommand::Diff(a) => diff(&a),
        DynamicCommand::Delete(a) => delete(&a),
    }
}

fn delete(a: &DeleteArgs) -> anyhow::Result<()> {
    let store = crate::open_store(&a.state.state_file)?;
    match store.delete_parts(&a.source)? {
        0 => anyhow::bail!(
            "no dynamic part with source {:?} (see routerctl dynamic list)",
            a.source
        ),
        n => println!("deleted {n} generation(s) of {}", a.source),
    }
    Ok(())
}

const FORMATS: &[Format] = &[Format::Table, Format::Json, Format::Yaml];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PartRow<'a> {
    source: &'a str,
    generation: i64,
    status: &'a str,
    resources: usize,
    directives: usize,
    expires_at: Timestamp,
}

fn list(a: &DynListArgs) -> anyhow::Result<()> {
    let format = Format::parse(&a.output, FORMATS)?;
    let store = crate::open_store_read_only(&a.state.state_file)?;
    let now = store.now();
    let parts = store.list_parts()?;
    let rows: Vec<PartRow<'_>> = parts
        .iter()
        .map(|p| PartRow {
            source: &p.source,
            generation: p.generation,
            status: p.status_at(now),
            resources: p.resources.len(),
            directives: p.directives.len(),
            expires_at: p.expires_at,
        })
        .collect();
    let text = match format {
        Format::Json => output::json(&rows),
        Format::Yaml => output::yaml(&rows),
        _ => table(
            &[
                "SOURCE",
                "GEN",
                "STATUS",
                "RESOURCES",
                "DIRECTIVES",
                "EXPIRES",
            ],
            &rows
                .iter()
                .map(|r| {
                    vec![
                        r.source.to_string(),
                        r.generation.to_string(),
                        r.status.to_string(),
                        r.resources.to_string(),
                        r.directives.to_string(),
                        r.expires_at.display_cell(),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
    };
    print!("{text}");
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Described<'a> {
    id: i64,
    source: &'a str,
    generation: i64,
    status: &'a str,
    stored_status: &'a str,
    observed_at: Timestamp,
    expires_at: Timestamp,
    digest: &'a str,
    resources: &'a [routerd_model::Resource],
    directives: &'a [routerd_model::Directive],
    #[serde(skip_serializing_if = "str::is_empty")]
    error: &'a str,
    created_at: Timestamp,
    updated_at: Timestamp,
}

fn describe(a: &DescribeArgs) -> anyhow::Result<()> {
    let format = Format::parse(&a.output, FORMATS)?;
    let store = crate::open_store_read_only(&a.state.state_file)?;
    let now = store.now();
    let parts = store.parts_by_source(&a.source)?;
    let views: Vec<Described<'_>> = parts
        .iter()
        .map(|p| Described {
            id: p.id,
            source: &p.source,
            generation: p.generation,
            status: p.status_at(now),
            stored_status: &p.stored_status,
            observed_at: p.observed_at,
            expires_at: p.expires_at,
            digest: &p.digest,
            resources: &p.resources,
            directives: &p.directives,
            error: &p.error,
            created_at: p.created_at,
            updated_at: p.updated_at,
        })
        .collect();
    let text = match format {
        Format::Json => output::json(&views),
        Format::Yaml => output::yaml(&views),
        _ => parts
            .iter()
            .map(|p| describe_table(p, now))
            .collect::<Vec<_>>()
            .join("\n"),
    };
    print!("{text}");
    Ok(())
}

fn describe_table(p: &DynamicConfigPart, now: Timestamp) -> String {
    let mut lines: Vec<Vec<String>> = vec![
        vec!["Source:".into(), p.source.clone()],
        vec!["Generation:".into(), p.generation.to_string()],
        vec!["Status:".into(), p.status_at(now).into()],
        vec!["Stored Status:".into(), p.stored_status.clone()],
        vec!["Observed At:".into(), p.observed_at.display_cell()],
        vec!["Expires:".into(), p.expires_at.display_cell()],
        vec!["Digest:".into(), p.digest.clone()],
    ];
    if !p.error.is_empty() {
        lines.push(vec!["Error:".into(), p.error.clone()]);
    }
    let mut out = output::table(&[], &lines)
        .trim_start_matches('\n')
        .to_string();
    out.push_str("Resources:\n");
    if p.resources.is_empty() {
        out.push_str("  <none>\n");
    }
    for r in &p.resources {
        let spec = gojson::to_string(&r.spec).unwrap_or_default();
        out.push_str(&format!(
            "  - {}/{}\t{}\n    spec:\t{}\n",
            r.api_version, r.kind, r.metadata.name, spec
        ));
    }
    out.push_str("Directives:\n");
    if p.directives.is_empty() {
        out.push_str("  <none>\n");
    }
    for d in &p.directives {
        let t = &d.target;
        out.push_str(&format!(
            "  - {}\t{}/{}/{}",
            d.op, t.api_version, t.kind, t.name
        ));
        if !d.reason.is_empty() {
            out.push_str(&format!("\t{}", d.reason));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "Created At:  {}\nUpdated At:  {}\n",
        p.created_at.display_cell(),
        p.updated_at.display_cell()
    ));
    out
}

/// Loads the startup config and the stored parts and merges them at the current time.
fn effective(a: &RenderArgs) -> anyhow::Result<routerd_dynamic::Effective> {
    let router = crate::load_config(&a.config.config)?;
    let store = crate::open_store_read_only(&a.state.state_file)?;
    let parts = store.list_parts()?;
    routerd_dynamic::merge(&router, &parts, store.now()).context("build effective config")
}

fn render(a: &RenderArgs) -> anyhow::Result<()> {
    let format = Format::parse(
        a.output.as_deref().unwrap_or("yaml"),
        &[Format::Yaml, Format::Json],
    )?;
    let e = effective(a)?;
    let text = match format {
        Format::Json => routerd_dynamic::render_json(&e.router),
        _ => routerd_dynamic::render_yaml(&e.router),
    };
    print!("{text}");
    Ok(())
}

fn diff(a: &RenderArgs) -> anyhow::Result<()> {
    let format = Format::parse(
        a.output.as_deref().unwrap_or("text"),
        &[Format::Text, Format::Table, Format::Json],
    )?;
    let e = effective(a)?;
    print!(
        "{}",
        if format == Format::Json {
            routerd_dynamic::diff_json(&e)
        } else {
            routerd_dynamic::diff_text(&e)
        }
    );
    Ok(())
}
