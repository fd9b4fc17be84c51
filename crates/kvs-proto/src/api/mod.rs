//! The XML-RPC methods of the three processes, one type per method.
//!
//! - [`frontend`]: what clients and the harness call on port 8001;
//! - [`server`]: what the frontend calls on each server (the four course
//!   methods plus kvs's replication methods);
//! - [`proxy`]: what the harness calls on a client proxy (`put`, `get`).

pub mod frontend;
pub mod proxy;
pub mod server;

/// Declares a method type: its fields are its positional XML-RPC parameters,
/// in order. A leading `guarded` marks a method that changes data or
/// membership out of band: it needs the cluster secret (see [`crate::auth`]).
macro_rules! rpc_method {
    (
        $(#[$meta:meta])*
        guarded $name:ident = $method:literal ( $($field:ident : $ty:ty),* ) -> $reply:ty
    ) => {
        $crate::api::rpc_method! { @define [true] $(#[$meta])* $name = $method ( $($field : $ty),* ) -> $reply }
    };
    (
        $(#[$meta:meta])*
        $name:ident = $method:literal ( $($field:ident : $ty:ty),* ) -> $reply:ty
    ) => {
        $crate::api::rpc_method! { @define [false] $(#[$meta])* $name = $method ( $($field : $ty),* ) -> $reply }
    };
    (
        @define [$guarded:literal]
        $(#[$meta:meta])*
        $name:ident = $method:literal ( $($field:ident : $ty:ty),* ) -> $reply:ty
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            $(
                #[doc = concat!("The `", stringify!($field), "` parameter of `", $method, "` (parameters are positional, in this order).")]
                pub $field: $ty,
            )*
        }

        impl $crate::rpc::Rpc for $name {
            const METHOD: &'static str = $method;
            const GUARDED: bool = $guarded;
            type Reply = $reply;

            fn from_params(params: &[::dxr::Value]) -> Result<Self, ::dxr::Error> {
                #[allow(unused_parens)]
                let ($($field,)*): ($($ty,)*) = ::dxr::TryFromParams::try_from_params(params)?;
                Ok(Self { $($field,)* })
            }

            fn to_params(&self) -> Result<Vec<::dxr::Value>, ::dxr::Error> {
                Ok(vec![$(::dxr::TryToValue::try_to_value(&self.$field)?,)*])
            }
        }
    };
}
pub(crate) use rpc_method;

#[cfg(test)]
mod tests {
    use super::frontend::{ListServer, Put};
    use crate::rpc::Rpc;
    use dxr::Value;

    #[test]
    fn params_round_trip() {
        let put = Put { key: 3, value: -7 };
        let params = put.to_params().expect("encodes");
        assert_eq!(params, vec![Value::Integer(3), Value::Integer(-7)]);
        assert_eq!(Put::from_params(&params).expect("decodes"), put);
    }

    #[test]
    fn wrong_arity_and_type_are_errors() {
        assert!(Put::from_params(&[Value::Integer(1)]).is_err());
        assert!(Put::from_params(&[Value::String("1".into()), Value::Integer(2)]).is_err());
        assert!(ListServer::from_params(&[Value::Integer(1)]).is_err());
        assert!(ListServer::from_params(&[]).is_ok());
    }
}
