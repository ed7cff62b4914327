// Shared by the Node tests (not a test file itself).
'use strict';
const assert = require('node:assert/strict');

/** The `kind` of the sesphr error `f` throws (failing if it throws none). */
function kindOf(f) {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof Error, 'errors are JS Errors');
    return e.kind;
  }
  assert.fail('expected an error');
}

module.exports = { kindOf };
