"""The scheduler: programme offers, school bell schedules and calendars, tutor profiles
and availability, enrolments, groups, booked series and their occurrences, the change
history, attendance, parent links and calendar feeds (see ``docs/scheduler.md``).

Every table is new; nothing existing changes, so the upgrade cannot lose data and the
downgrade drops exactly these tables (indexes go with them).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calendar_feeds",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("owner_kind", sa.String(length=16), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_calendar_feeds")),
    )
    op.create_index(
        "ix_calendar_feeds_owner", "calendar_feeds", ["owner_kind", "owner_id"], unique=False
    )
    op.create_table(
        "programme_offers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("programme", sa.String(length=16), nullable=False),
        sa.Column("vendor", sa.String(length=32), nullable=False),
        sa.Column("subjects", sa.String(length=64), nullable=False),
        sa.Column("low_grade", sa.SmallInteger(), nullable=False),
        sa.Column("high_grade", sa.SmallInteger(), nullable=False),
        sa.Column("languages", sa.String(length=64), nullable=False),
        sa.Column("group_limit", sa.SmallInteger(), nullable=False),
        sa.Column("session_minutes", sa.SmallInteger(), nullable=False),
        sa.Column("min_sessions_per_week", sa.SmallInteger(), nullable=False),
        sa.Column("term_start", sa.Date(), nullable=False),
        sa.Column("term_end", sa.Date(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_programme_offers")),
    )
    op.create_index(
        op.f("ix_programme_offers_vendor"), "programme_offers", ["vendor"], unique=False
    )
    op.create_table(
        "tutor_profiles",
        sa.Column("tutor_id", sa.String(length=64), nullable=False),
        sa.Column("vendor", sa.String(length=32), nullable=False),
        sa.Column(
            "display_name", sa.String(length=100), server_default=sa.text("''"), nullable=False
        ),
        sa.Column("languages", sa.String(length=64), nullable=False),
        sa.Column(
            "accommodations", sa.String(length=64), server_default=sa.text("''"), nullable=False
        ),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("tutor_id", name=op.f("pk_tutor_profiles")),
    )
    op.create_index(op.f("ix_tutor_profiles_vendor"), "tutor_profiles", ["vendor"], unique=False)
    op.create_table(
        "availability_exceptions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tutor_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("available", sa.Boolean(), nullable=False),
        sa.Column("start_min", sa.SmallInteger(), nullable=True),
        sa.Column("end_min", sa.SmallInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tutor_id"],
            ["tutor_profiles.tutor_id"],
            name=op.f("fk_availability_exceptions_tutor_id_tutor_profiles"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_availability_exceptions")),
    )
    op.create_index(
        op.f("ix_availability_exceptions_tutor_id"),
        "availability_exceptions",
        ["tutor_id"],
        unique=False,
    )
    op.create_table(
        "availability_windows",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tutor_id", sa.String(length=64), nullable=False),
        sa.Column("weekday", sa.SmallInteger(), nullable=False),
        sa.Column("start_min", sa.SmallInteger(), nullable=False),
        sa.Column("end_min", sa.SmallInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tutor_id"],
            ["tutor_profiles.tutor_id"],
            name=op.f("fk_availability_windows_tutor_id_tutor_profiles"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_availability_windows")),
    )
    op.create_index(
        op.f("ix_availability_windows_tutor_id"), "availability_windows", ["tutor_id"], unique=False
    )
    op.create_table(
        "bell_schedules",
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("weekday", sa.SmallInteger(), nullable=False),
        sa.Column("dismissal", sa.SmallInteger(), nullable=False),
        sa.Column("minimum_dismissal", sa.SmallInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["school_id"], ["schools.id"], name=op.f("fk_bell_schedules_school_id_schools")
        ),
        sa.PrimaryKeyConstraint("school_id", "weekday", name=op.f("pk_bell_schedules")),
    )
    op.create_table(
        "school_calendar_days",
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=200), server_default=sa.text("''"), nullable=False),
        sa.ForeignKeyConstraint(
            ["school_id"], ["schools.id"], name=op.f("fk_school_calendar_days_school_id_schools")
        ),
        sa.PrimaryKeyConstraint("school_id", "day", name=op.f("pk_school_calendar_days")),
    )
    op.create_table(
        "school_settings",
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("after_school_end", sa.SmallInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["school_id"], ["schools.id"], name=op.f("fk_school_settings_school_id_schools")
        ),
        sa.PrimaryKeyConstraint("school_id", name=op.f("pk_school_settings")),
    )
    op.create_table(
        "tutoring_groups",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("offer_id", sa.String(length=32), nullable=False),
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("grade_band", sa.String(length=8), nullable=False),
        sa.Column("subject", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("tutor_id", sa.String(length=64), nullable=False),
        sa.Column(
            "accommodations", sa.String(length=64), server_default=sa.text("''"), nullable=False
        ),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["offer_id"],
            ["programme_offers.id"],
            name=op.f("fk_tutoring_groups_offer_id_programme_offers"),
        ),
        sa.ForeignKeyConstraint(
            ["school_id"], ["schools.id"], name=op.f("fk_tutoring_groups_school_id_schools")
        ),
        sa.ForeignKeyConstraint(
            ["tutor_id"],
            ["tutor_profiles.tutor_id"],
            name=op.f("fk_tutoring_groups_tutor_id_tutor_profiles"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tutoring_groups")),
    )
    op.create_index(
        op.f("ix_tutoring_groups_school_id"), "tutoring_groups", ["school_id"], unique=False
    )
    op.create_table(
        "booking_series",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("offer_id", sa.String(length=32), nullable=False),
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("group_id", sa.String(length=32), nullable=True),
        sa.Column("student_id", sa.String(length=64), nullable=True),
        sa.Column("tutor_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("rrule", sa.String(length=500), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("start_min", sa.SmallInteger(), nullable=False),
        sa.Column("minutes", sa.SmallInteger(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["tutoring_groups.id"],
            name=op.f("fk_booking_series_group_id_tutoring_groups"),
        ),
        sa.ForeignKeyConstraint(
            ["offer_id"],
            ["programme_offers.id"],
            name=op.f("fk_booking_series_offer_id_programme_offers"),
        ),
        sa.ForeignKeyConstraint(
            ["school_id"], ["schools.id"], name=op.f("fk_booking_series_school_id_schools")
        ),
        sa.ForeignKeyConstraint(
            ["student_id"],
            ["students.sourced_id"],
            name=op.f("fk_booking_series_student_id_students"),
        ),
        sa.ForeignKeyConstraint(
            ["tutor_id"],
            ["tutor_profiles.tutor_id"],
            name=op.f("fk_booking_series_tutor_id_tutor_profiles"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_series")),
    )
    op.create_index(
        op.f("ix_booking_series_school_id"), "booking_series", ["school_id"], unique=False
    )
    op.create_table(
        "enrolments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("student_id", sa.String(length=64), nullable=False),
        sa.Column("offer_id", sa.String(length=32), nullable=False),
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column(
            "accommodations", sa.String(length=64), server_default=sa.text("''"), nullable=False
        ),
        sa.Column("enrolled_by", sa.String(length=64), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["offer_id"],
            ["programme_offers.id"],
            name=op.f("fk_enrolments_offer_id_programme_offers"),
        ),
        sa.ForeignKeyConstraint(
            ["school_id"], ["schools.id"], name=op.f("fk_enrolments_school_id_schools")
        ),
        sa.ForeignKeyConstraint(
            ["student_id"], ["students.sourced_id"], name=op.f("fk_enrolments_student_id_students")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrolments")),
    )
    op.create_index(
        "ix_enrolments_offer_school", "enrolments", ["offer_id", "school_id"], unique=False
    )
    op.create_index(
        "uq_enrolments_student_offer", "enrolments", ["student_id", "offer_id"], unique=True
    )
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.String(length=32), nullable=False),
        sa.Column("student_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["tutoring_groups.id"],
            name=op.f("fk_group_members_group_id_tutoring_groups"),
        ),
        sa.ForeignKeyConstraint(
            ["student_id"],
            ["students.sourced_id"],
            name=op.f("fk_group_members_student_id_students"),
        ),
        sa.PrimaryKeyConstraint("group_id", "student_id", name=op.f("pk_group_members")),
    )
    op.create_index(
        op.f("ix_group_members_student_id"), "group_members", ["student_id"], unique=False
    )
    op.create_table(
        "parent_links",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("student_id", sa.String(length=64), nullable=False),
        sa.Column("offer_id", sa.String(length=32), nullable=True),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["offer_id"],
            ["programme_offers.id"],
            name=op.f("fk_parent_links_offer_id_programme_offers"),
        ),
        sa.ForeignKeyConstraint(
            ["student_id"],
            ["students.sourced_id"],
            name=op.f("fk_parent_links_student_id_students"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parent_links")),
    )
    op.create_index(
        op.f("ix_parent_links_student_id"), "parent_links", ["student_id"], unique=False
    )
    op.create_table(
        "booking_students",
        sa.Column("series_id", sa.String(length=32), nullable=False),
        sa.Column("student_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["series_id"],
            ["booking_series.id"],
            name=op.f("fk_booking_students_series_id_booking_series"),
        ),
        sa.ForeignKeyConstraint(
            ["student_id"],
            ["students.sourced_id"],
            name=op.f("fk_booking_students_student_id_students"),
        ),
        sa.PrimaryKeyConstraint("series_id", "student_id", name=op.f("pk_booking_students")),
    )
    op.create_index(
        op.f("ix_booking_students_student_id"), "booking_students", ["student_id"], unique=False
    )
    op.create_table(
        "occurrences",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("series_id", sa.String(length=32), nullable=False),
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("tutor_id", sa.String(length=64), nullable=False),
        sa.Column("local_day", sa.Date(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("original_starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("cancelled_by", sa.String(length=64), nullable=True),
        sa.Column("cancel_reason", sa.String(length=200), nullable=True),
        sa.Column("tutor_status", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["school_id"], ["schools.id"], name=op.f("fk_occurrences_school_id_schools")
        ),
        sa.ForeignKeyConstraint(
            ["series_id"],
            ["booking_series.id"],
            name=op.f("fk_occurrences_series_id_booking_series"),
        ),
        sa.ForeignKeyConstraint(
            ["tutor_id"],
            ["tutor_profiles.tutor_id"],
            name=op.f("fk_occurrences_tutor_id_tutor_profiles"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_occurrences")),
    )
    op.create_index(
        "ix_occurrences_school_starts", "occurrences", ["school_id", "starts_at"], unique=False
    )
    op.create_index(
        "ix_occurrences_series_starts", "occurrences", ["series_id", "starts_at"], unique=False
    )
    op.create_index(
        "ix_occurrences_tutor_starts", "occurrences", ["tutor_id", "starts_at"], unique=False
    )
    op.create_table(
        "schedule_changes",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("series_id", sa.String(length=32), nullable=False),
        sa.Column("occurrence_id", sa.String(length=32), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=200), server_default=sa.text("''"), nullable=False),
        sa.Column("detail", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.ForeignKeyConstraint(
            ["series_id"],
            ["booking_series.id"],
            name=op.f("fk_schedule_changes_series_id_booking_series"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_changes")),
    )
    op.create_index(
        op.f("ix_schedule_changes_series_id"), "schedule_changes", ["series_id"], unique=False
    )
    op.create_table(
        "attendance",
        sa.Column("occurrence_id", sa.String(length=32), nullable=False),
        sa.Column("student_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("marked_by", sa.String(length=64), nullable=False),
        sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["occurrences.id"],
            name=op.f("fk_attendance_occurrence_id_occurrences"),
        ),
        sa.ForeignKeyConstraint(
            ["student_id"], ["students.sourced_id"], name=op.f("fk_attendance_student_id_students")
        ),
        sa.PrimaryKeyConstraint("occurrence_id", "student_id", name=op.f("pk_attendance")),
    )


def downgrade() -> None:
    op.drop_table("attendance")
    op.drop_table("schedule_changes")
    op.drop_table("occurrences")
    op.drop_table("booking_students")
    op.drop_table("parent_links")
    op.drop_table("group_members")
    op.drop_table("enrolments")
    op.drop_table("booking_series")
    op.drop_table("tutoring_groups")
    op.drop_table("school_settings")
    op.drop_table("school_calendar_days")
    op.drop_table("bell_schedules")
    op.drop_table("availability_windows")
    op.drop_table("availability_exceptions")
    op.drop_table("tutor_profiles")
    op.drop_table("programme_offers")
    op.drop_table("calendar_feeds")
