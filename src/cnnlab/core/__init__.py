"""Services every capability uses and none owns: errors, file writing, seeding, lazy exports, runtime."""
