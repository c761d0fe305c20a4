"""Use cases. Services hold the rules and talk to the store through its protocol."""
