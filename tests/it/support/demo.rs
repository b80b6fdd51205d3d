//! The demo's fixture (`plans/demo/fixture`) as the ERP tests use it: the
//! stand-in server, a database seeded with its schema and data, and its
//! filestore copied where a plan's server finds it.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::apply::execute;
use crate::support::{TestDatabase, database};

/// The demo's fixture folder.
pub fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/demo/fixture")
}

/// A database on the shared cluster seeded as the demo's.
pub fn demo_database(label: &str) -> TestDatabase {
    let db = database(label);
    for file in ["01-schema.sql", "02-data.sql"] {
        let sql = fs::read_to_string(fixture().join(file)).expect("the demo's fixture");
        execute(&db, &sql);
    }
    db
}

/// Copies the demo's filestore to `to` (made with its parents).
pub fn copy_filestore(to: &Path) {
    copy_tree(&fixture().join("filestore/demo"), to);
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("read the fixture") {
        let entry = entry.expect("an entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}
