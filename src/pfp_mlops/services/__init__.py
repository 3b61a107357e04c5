"""One service per step: fetch through adapters, ask a policy, apply, return a domain model."""
