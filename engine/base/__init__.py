"""What every stage stands on: logging with patient-data redaction, metrics, folders and files
that hold patient data, shortage episodes."""
