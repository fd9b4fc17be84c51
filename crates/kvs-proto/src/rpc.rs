//! A remote call as a type.
//!
//! Each XML-RPC method is a struct implementing [`Rpc`]: its method name, how
//! it turns into and out of XML-RPC parameters, and the type of its reply.
//! Clients send these values; the router in [`crate::serve`] decodes them and
//! hands them to a service, so a method's shape is written down exactly once.

use dxr::{Error as DxrError, TryFromValue, TryToValue, Value};

/// One XML-RPC method: a command with a name, parameters and a reply type.
pub trait Rpc: Sized + Send + Sync + 'static {
    /// The XML-RPC method name.
    const METHOD: &'static str;
    /// Whether the method changes data or membership out of band, and so
    /// needs the cluster secret when one is configured (see [`crate::auth`]).
    const GUARDED: bool = false;
    /// What a successful call returns.
    type Reply: TryToValue + TryFromValue + Send + 'static;

    /// Decodes the call from its parameters (wrong arity or type is an error).
    fn from_params(params: &[Value]) -> Result<Self, DxrError>;
    /// Encodes the call as parameters.
    fn to_params(&self) -> Result<Vec<Value>, DxrError>;
}
