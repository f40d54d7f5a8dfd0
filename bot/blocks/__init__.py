"""Pure Block Kit builders, one module per surface: approval cards, reminders, progress, checklists."""
