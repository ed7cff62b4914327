pub mod cheader;
