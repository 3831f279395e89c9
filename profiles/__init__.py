"""Service profiles (profiles/profile.py): what the harness needs to know about a service, in
one TOML file; the payment-service profile is the default."""
