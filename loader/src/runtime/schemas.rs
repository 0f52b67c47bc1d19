//! A plugin's JSON Schemas (`input_schema`, `output_schema` in `plugin.json`): compiled when
//! the plugin loads, and checked against the context before and after `execute`. An error
//! names the JSON pointer of what does not match. Checking needs plg-loader's `schemas`
//! feature (the jsonschema crate); a host without it refuses to load a plugin that declares
//! schemas rather than skip the checks.

use std::path::Path;

use plg_api::Context;

#[cfg(feature = "schemas")]
use crate::manifest::SchemaSource;
use crate::{
    error::{ExecError, LoadError},
    manifest::{read_manifest_file, Manifest},
};

/// The compiled schemas of one plugin.
#[derive(Debug)]
pub(crate) struct Schemas {
    #[cfg(feature = "schemas")]
    input: Option<jsonschema::Validator>,
    #[cfg(feature = "schemas")]
    output: Option<jsonschema::Validator>,
}

/// Reads (for a file) and compiles one schema.
#[cfg(feature = "schemas")]
fn compile(
    source: &SchemaSource,
    field: &'static str,
    manifest_path: &Path,
) -> Result<jsonschema::Validator, LoadError> {
    let bad = |problem: String| LoadError::Schema {
        manifest: manifest_path.to_owned(),
        field,
        problem,
    };
    let value = match source {
        SchemaSource::Inline(v) => v.clone(),
        SchemaSource::File(rel) => {
            let path = manifest_path.parent().unwrap_or(Path::new(".")).join(rel);
            let text = read_manifest_file(&path)?;
            serde_json::from_str(&text)
                .map_err(|e| bad(format!("{} is not JSON: {e}", path.display())))?
        }
    };
    jsonschema::validator_for(&value).map_err(|e| bad(format!("not a valid JSON Schema: {e}")))
}

impl Schemas {
    /// The manifest's schemas, compiled; `None` when it declares none.
    pub(crate) fn load(
        manifest: &Manifest,
        manifest_path: &Path,
    ) -> Result<Option<Self>, LoadError> {
        if manifest.input_schema.is_none() && manifest.output_schema.is_none() {
            return Ok(None);
        }
        #[cfg(feature = "schemas")]
        {
            let input = manifest
                .input_schema
                .as_ref()
                .map(|s| compile(s, "input_schema", manifest_path))
                .transpose()?;
            let output = manifest
                .output_schema
                .as_ref()
                .map(|s| compile(s, "output_schema", manifest_path))
                .transpose()?;
            Ok(Some(Schemas { input, output }))
        }
        #[cfg(not(feature = "schemas"))]
        {
            let _ = read_manifest_file; // used with the feature
            Err(LoadError::Schema {
                manifest: manifest_path.to_owned(),
                field: if manifest.input_schema.is_some() {
                    "input_schema"
                } else {
                    "output_schema"
                },
                problem: "this host was built without plg-loader's `schemas` feature, so it \
                          cannot check the schema; turn the feature on"
                    .into(),
            })
        }
    }

    /// Checks the context against `input_schema`.
    pub(crate) fn check_input(&self, plugin: &str, ctx: &Context) -> Result<(), ExecError> {
        #[cfg(feature = "schemas")]
        if let Some(v) = &self.input {
            return check(v, ctx).map_err(|why| ExecError::InvalidInput {
                plugin: plugin.to_owned(),
                message: format!("the context does not match input_schema: {why}"),
            });
        }
        let _ = (plugin, ctx);
        Ok(())
    }

    /// Checks the context against `output_schema`.
    pub(crate) fn check_output(&self, plugin: &str, ctx: &Context) -> Result<(), ExecError> {
        #[cfg(feature = "schemas")]
        if let Some(v) = &self.output {
            return check(v, ctx).map_err(|why| ExecError::InvalidOutput {
                plugin: plugin.to_owned(),
                message: format!("the context does not match output_schema: {why}"),
            });
        }
        let _ = (plugin, ctx);
        Ok(())
    }
}

/// Every mismatch, each with its JSON pointer: `at /name: 5 is not of type "string"`.
#[cfg(feature = "schemas")]
fn check(validator: &jsonschema::Validator, ctx: &Context) -> Result<(), String> {
    let instance = serde_json::to_value(ctx.values()).map_err(|e| e.to_string())?;
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| {
            let at = e.instance_path().to_string();
            format!("at {}: {e}", if at.is_empty() { "/" } else { &at })
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}
