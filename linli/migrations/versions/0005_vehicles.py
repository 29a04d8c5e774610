"""Vehicle access: vehicles, permits, plate watch list, barrier decisions, parking

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25

Tables of the vehicles domain (see linli/vehicles/models.py).
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import linli.core.db

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('vehicle_car_parks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('created_at', linli.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_vehicle_car_parks_community_id_communities'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vehicle_car_parks')),
    sa.UniqueConstraint('community_id', 'name', name=op.f('uq_vehicle_car_parks_community_id'))
    )
    op.create_table('vehicle_watchlist',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('plate', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('authorised_by', sa.String(length=100), nullable=False),
    sa.Column('severity', sa.String(length=10), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.Column('expires_at', linli.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', linli.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_by', sa.String(length=100), nullable=True),
    sa.Column('matches', sa.Integer(), nullable=False),
    sa.Column('last_match_at', linli.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', linli.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_vehicle_watchlist_community_id_communities'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vehicle_watchlist'))
    )
    op.create_index('ix_vehicle_watchlist_comm_plate', 'vehicle_watchlist', ['community_id', 'plate'], unique=False)
    op.create_table('vehicle_gates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('direction', sa.String(length=5), nullable=False),
    sa.Column('car_park_id', sa.Integer(), nullable=True),
    sa.Column('device_id', sa.Integer(), nullable=True),
    sa.Column('auto_open_confidence', sa.Float(), nullable=False),
    sa.Column('unknown_action', sa.String(length=10), nullable=False),
    sa.Column('visitors_allowed', sa.Boolean(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', linli.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['car_park_id'], ['vehicle_car_parks.id'], name=op.f('fk_vehicle_gates_car_park_id_vehicle_car_parks'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_vehicle_gates_community_id_communities'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_vehicle_gates_device_id_devices'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vehicle_gates')),
    sa.UniqueConstraint('community_id', 'name', name=op.f('uq_vehicle_gates_community_id'))
    )
    op.create_table('vehicle_visitors',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('plate', sa.String(length=16), nullable=False),
    sa.Column('visitor_name', sa.String(length=100), nullable=True),
    sa.Column('phone', sa.String(length=30), nullable=True),
    sa.Column('purpose', sa.String(length=200), nullable=True),
    sa.Column('host_resident_id', sa.Integer(), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('valid_from', linli.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('valid_until', linli.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('entered_at', linli.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('exited_at', linli.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', linli.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', linli.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_vehicle_visitors_community_id_communities'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_vehicle_visitors_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['host_resident_id'], ['residents.id'], name=op.f('fk_vehicle_visitors_host_resident_id_residents'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vehicle_visitors'))
    )
    op.create_index('ix_vehicle_visitors_comm_plate', 'vehicle_visitors', ['community_id', 'plate'], unique=False)
    op.create_index('ix_vehicle_visitors_comm_until', 'vehicle_visitors', ['community_id', 'valid_until'], unique=False)
    op.create_index(op.f('ix_vehicle_visitors_host_resident_id'), 'vehicle_visitors', ['host_resident_id'], unique=False)
    op.create_table('vehicles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('plate', sa.String(length=16), nullable=False),
    sa.Column('identity_id', sa.Integer(), nullable=True),
    sa.Column('household_id', sa.Integer(), nullable=True),
    sa.Column('credential_id', sa.Integer(), nullable=True),
    sa.Column('color', sa.String(length=20), nullable=True),
    sa.Column('description', sa.String(length=100), nullable=True),
    sa.Column('note', sa.String(length=300), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', linli.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', linli.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_vehicles_community_id_communities'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['credential_id'], ['access_credentials.id'], name=op.f('fk_vehicles_credential_id_access_credentials'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_vehicles_household_id_households'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['identity_id'], ['access_identities.id'], name=op.f('fk_vehicles_identity_id_access_identities'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vehicles')),
    sa.UniqueConstraint('community_id', 'plate', name=op.f('uq_vehicles_community_id'))
    )
    op.create_index(op.f('ix_vehicles_household_id'), 'vehicles', ['household_id'], unique=False)
    op.create_index(op.f('ix_vehicles_identity_id'), 'vehicles', ['identity_id'], unique=False)
    op.create_table('vehicle_permits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('plate', sa.String(length=16), nullable=False),
    sa.Column('vehicle_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('holder', sa.String(length=100), nullable=True),
    sa.Column('car_park_id', sa.Integer(), nullable=True),
    sa.Column('spot', sa.String(length=40), nullable=True),
    sa.Column('fee_type', sa.String(length=60), nullable=True),
    sa.Column('valid_from', linli.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('valid_until', linli.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('note', sa.String(length=300), nullable=True),
    sa.Column('created_by', sa.String(length=100), nullable=True),
    sa.Column('revoked_at', linli.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', linli.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['car_park_id'], ['vehicle_car_parks.id'], name=op.f('fk_vehicle_permits_car_park_id_vehicle_car_parks'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_vehicle_permits_community_id_communities'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['vehicle_id'], ['vehicles.id'], name=op.f('fk_vehicle_permits_vehicle_id_vehicles'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vehicle_permits'))
    )
    op.create_index('ix_vehicle_permits_comm_plate', 'vehicle_permits', ['community_id', 'plate'], unique=False)
    op.create_index(op.f('ix_vehicle_permits_vehicle_id'), 'vehicle_permits', ['vehicle_id'], unique=False)
    op.create_table('vehicle_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('gate_id', sa.Integer(), nullable=True),
    sa.Column('at', linli.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('direction', sa.String(length=5), nullable=False),
    sa.Column('read_plate', sa.String(length=16), nullable=True),
    sa.Column('read_status', sa.String(length=20), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.Column('plate_color', sa.String(length=10), nullable=True),
    sa.Column('plate', sa.String(length=16), nullable=True),
    sa.Column('category', sa.String(length=12), nullable=False),
    sa.Column('decision', sa.String(length=8), nullable=False),
    sa.Column('reason', sa.String(length=40), nullable=False),
    sa.Column('vehicle_id', sa.Integer(), nullable=True),
    sa.Column('identity_id', sa.Integer(), nullable=True),
    sa.Column('visitor_id', sa.Integer(), nullable=True),
    sa.Column('permit_id', sa.Integer(), nullable=True),
    sa.Column('watch_id', sa.Integer(), nullable=True),
    sa.Column('snapshot_sha256', sa.String(length=64), nullable=True),
    sa.Column('command_id', sa.Integer(), nullable=True),
    sa.Column('review_status', sa.String(length=10), nullable=True),
    sa.Column('reviewed_by', sa.String(length=100), nullable=True),
    sa.Column('reviewed_at', linli.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('actor', sa.String(length=100), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('elapsed_ms', sa.Float(), nullable=True),
    sa.Column('event_id', sa.String(length=36), nullable=True),
    sa.ForeignKeyConstraint(['command_id'], ['iot_commands.id'], name=op.f('fk_vehicle_events_command_id_iot_commands'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_vehicle_events_community_id_communities'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['gate_id'], ['vehicle_gates.id'], name=op.f('fk_vehicle_events_gate_id_vehicle_gates'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['identity_id'], ['access_identities.id'], name=op.f('fk_vehicle_events_identity_id_access_identities'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['permit_id'], ['vehicle_permits.id'], name=op.f('fk_vehicle_events_permit_id_vehicle_permits'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['vehicle_id'], ['vehicles.id'], name=op.f('fk_vehicle_events_vehicle_id_vehicles'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['visitor_id'], ['vehicle_visitors.id'], name=op.f('fk_vehicle_events_visitor_id_vehicle_visitors'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['watch_id'], ['vehicle_watchlist.id'], name=op.f('fk_vehicle_events_watch_id_vehicle_watchlist'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vehicle_events'))
    )
    op.create_index('ix_vehicle_events_comm_at', 'vehicle_events', ['community_id', 'at'], unique=False)
    op.create_index('ix_vehicle_events_comm_plate', 'vehicle_events', ['community_id', 'plate'], unique=False)
    op.create_index('ix_vehicle_events_comm_review', 'vehicle_events', ['community_id', 'review_status'], unique=False)
    op.create_index(op.f('ix_vehicle_events_gate_id'), 'vehicle_events', ['gate_id'], unique=False)
    op.create_table('vehicle_presence',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('community_id', sa.Integer(), nullable=False),
    sa.Column('car_park_id', sa.Integer(), nullable=True),
    sa.Column('plate', sa.String(length=16), nullable=False),
    sa.Column('category', sa.String(length=12), nullable=False),
    sa.Column('visitor_id', sa.Integer(), nullable=True),
    sa.Column('entered_at', linli.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('entry_event_id', sa.Integer(), nullable=True),
    sa.Column('exited_at', linli.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('exit_event_id', sa.Integer(), nullable=True),
    sa.Column('overstay_alarmed', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['car_park_id'], ['vehicle_car_parks.id'], name=op.f('fk_vehicle_presence_car_park_id_vehicle_car_parks'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['community_id'], ['communities.id'], name=op.f('fk_vehicle_presence_community_id_communities'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['entry_event_id'], ['vehicle_events.id'], name=op.f('fk_vehicle_presence_entry_event_id_vehicle_events'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['exit_event_id'], ['vehicle_events.id'], name=op.f('fk_vehicle_presence_exit_event_id_vehicle_events'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['visitor_id'], ['vehicle_visitors.id'], name=op.f('fk_vehicle_presence_visitor_id_vehicle_visitors'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vehicle_presence'))
    )
    op.create_index('ix_vehicle_presence_comm_open', 'vehicle_presence', ['community_id', 'exited_at'], unique=False)
    op.create_index('ix_vehicle_presence_comm_plate', 'vehicle_presence', ['community_id', 'plate'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_vehicle_presence_comm_plate', table_name='vehicle_presence')
    op.drop_index('ix_vehicle_presence_comm_open', table_name='vehicle_presence')
    op.drop_table('vehicle_presence')
    op.drop_index(op.f('ix_vehicle_events_gate_id'), table_name='vehicle_events')
    op.drop_index('ix_vehicle_events_comm_review', table_name='vehicle_events')
    op.drop_index('ix_vehicle_events_comm_plate', table_name='vehicle_events')
    op.drop_index('ix_vehicle_events_comm_at', table_name='vehicle_events')
    op.drop_table('vehicle_events')
    op.drop_index(op.f('ix_vehicle_permits_vehicle_id'), table_name='vehicle_permits')
    op.drop_index('ix_vehicle_permits_comm_plate', table_name='vehicle_permits')
    op.drop_table('vehicle_permits')
    op.drop_index(op.f('ix_vehicles_identity_id'), table_name='vehicles')
    op.drop_index(op.f('ix_vehicles_household_id'), table_name='vehicles')
    op.drop_table('vehicles')
    op.drop_index(op.f('ix_vehicle_visitors_host_resident_id'), table_name='vehicle_visitors')
    op.drop_index('ix_vehicle_visitors_comm_until', table_name='vehicle_visitors')
    op.drop_index('ix_vehicle_visitors_comm_plate', table_name='vehicle_visitors')
    op.drop_table('vehicle_visitors')
    op.drop_table('vehicle_gates')
    op.drop_index('ix_vehicle_watchlist_comm_plate', table_name='vehicle_watchlist')
    op.drop_table('vehicle_watchlist')
    op.drop_table('vehicle_car_parks')
