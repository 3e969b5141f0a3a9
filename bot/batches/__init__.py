"""Many users under one approval: asking (pre-flight), deciding, and running them at sFOX's pace."""
