//! A call's result on the wire, the same for the gRPC service and the frames socket.

use plg_api::Context;
use plg_loader::ExecError;
use plg_protocol::{
    pb::{self, plugin_error::Kind},
    to_wire,
};
use tonic::Status;

/// A call's outcome on the wire: the context's values, or the plugin's error; a failure that
/// is not the plugin's is a status.
pub(crate) fn outcome(
    result: Result<(), Box<ExecError>>,
    ctx: &Context,
) -> Result<pb::execute_response::Outcome, Status> {
    Ok(match result {
        Ok(()) => pb::execute_response::Outcome::Values(to_wire(ctx.values())),
        Err(e) => pb::execute_response::Outcome::Error(plugin_error(*e)?),
    })
}

/// What the plugin reported, on the wire; a failure that is not the plugin's is a status.
fn plugin_error(e: ExecError) -> Result<pb::PluginError, Status> {
    let (kind, message) = match e {
        ExecError::Failed { message, .. } => (Kind::Failed, message),
        ExecError::InvalidInput { message, .. } => (Kind::InvalidInput, message),
        ExecError::Panicked { message, .. } => (Kind::Panicked, message),
        ExecError::Cancelled { .. } => (Kind::Cancelled, String::new()),
        ExecError::DeadlineExceeded { .. } => {
            return Err(Status::deadline_exceeded("the call's deadline passed"))
        }
        other => return Err(Status::internal(other.to_string())),
    };
    Ok(pb::PluginError {
        kind: kind.into(),
        message,
    })
}
