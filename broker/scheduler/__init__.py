"""The scheduler: the district's booked tutoring (school-based high-dose and home-based
programmes), from programme set-up to attendance. See ``docs/scheduler.md``."""
