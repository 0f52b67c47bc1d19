//! A worker's reply, as the caller sees it: the same context and the same `ExecError` kinds
//! as a call in this process.

use plg_api::{Context, PluginErrorKind};
use plg_protocol::{from_wire, pb};

use crate::{error::ExecError, runtime::plugin::Outcome};

/// The caller's context after a reply: the plugin's values, or its error.
pub(super) fn apply(id: &str, ctx: &mut Context, response: pb::ExecuteResponse) -> Outcome {
    match response.outcome {
        Some(pb::execute_response::Outcome::Values(values)) => {
            let values = from_wire(values).map_err(|e| {
                Box::new(ExecError::Worker {
                    plugin: id.to_owned(),
                    message: format!("its reply is malformed: {e}"),
                })
            })?;
            *ctx.values_mut() = values;
            Ok(())
        }
        Some(pb::execute_response::Outcome::Error(e)) => Err(Box::new(plugin_error(id, e))),
        None => Err(Box::new(ExecError::Worker {
            plugin: id.to_owned(),
            message: "its reply has no outcome".into(),
        })),
    }
}

/// What the plugin reported, as the same error the in-process runtime gives.
fn plugin_error(id: &str, e: pb::PluginError) -> ExecError {
    let plugin = id.to_owned();
    // Kept as the plugin wrote it, as in-process: whoever shows it escapes it.
    let message = e.message;
    let kind = match pb::plugin_error::Kind::try_from(e.kind) {
        Ok(pb::plugin_error::Kind::InvalidInput) => PluginErrorKind::InvalidInput,
        Ok(pb::plugin_error::Kind::Cancelled) => PluginErrorKind::Cancelled,
        Ok(pb::plugin_error::Kind::Panicked) => PluginErrorKind::Panicked,
        _ => PluginErrorKind::Failed,
    };
    match kind {
        PluginErrorKind::InvalidInput => ExecError::InvalidInput { plugin, message },
        PluginErrorKind::Cancelled => ExecError::Cancelled { plugin },
        PluginErrorKind::Panicked => ExecError::Panicked { plugin, message },
        _ => ExecError::Failed { plugin, message },
    }
}
