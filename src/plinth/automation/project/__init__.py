"""Project files (ADR 0100): YAML documents describing a project's resources, validated,
planned against the live store, applied and exported. Resource kinds are registered in
:mod:`plinth.automation.project.kinds`."""
