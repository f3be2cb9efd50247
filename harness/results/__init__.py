"""The results folder (written whole before MLflow is contacted), its assembly from the
families' outputs, and the human and CI views of it (console, markdown, JUnit)."""
