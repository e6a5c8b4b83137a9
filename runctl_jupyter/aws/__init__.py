"""The boto3 backend: one lazily-built session/client factory and verb-first operations."""
