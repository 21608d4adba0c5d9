"""The only package that writes SQL. Everything above it speaks in domain terms."""
