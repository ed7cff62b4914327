pub(crate) mod abi_calls;
pub(crate) mod cheader;
