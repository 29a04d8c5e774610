"""Roles and the permissions they carry. Grants are per community (see RoleGrant)."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    PLATFORM_ADMIN = "platform_admin"
    STAFF = "staff"
    GRID_WORKER = "grid_worker"
    PROPERTY_MANAGER = "property_manager"
    SECURITY_GUARD = "security_guard"
    PROFESSIONAL = "professional"
    RESIDENT = "resident"


class Perm(StrEnum):
    COMMUNITY_READ = "community.read"
    COMMUNITY_MANAGE = "community.manage"
    PEOPLE_READ = "people.read"
    PEOPLE_WRITE = "people.write"
    PEOPLE_IMPORT = "people.import"
    PEOPLE_SENSITIVE = "people.sensitive"  # full phone numbers, emergency contacts
    GRIDS_MANAGE = "grids.manage"
    USERS_MANAGE = "users.manage"
    TOKENS_MANAGE = "tokens.manage"
    AUDIT_READ = "audit.read"
    EVENTS_READ = "events.read"
    SELF = "self"  # a resident's own records
    WORKORDERS_READ = "workorders.read"
    WORKORDERS_HANDLE = "workorders.handle"  # work on orders assigned to oneself or one's role
    WORKORDERS_MANAGE = "workorders.manage"  # create, assign, close any order, routing and SLA
    IOT_READ = "iot.read"
    IOT_MANAGE = "iot.manage"  # devices, profiles, rules
    ALARMS_HANDLE = "alarms.handle"  # acknowledge and clear alarms
    DEVICES_INGEST = "devices.ingest"  # HTTP ingestion from gateways (tokens)
    DEVICES_COMMAND = "devices.command"
    CONSULTATION_READ = "consultation.read"  # demands, topics, votes: take part
    CONSULTATION_MANAGE = "consultation.manage"  # topics, moderation, polls, demand handling
    ACCESS_READ = "access.read"  # gates, identities, visitors expected today, flow counts
    ACCESS_MANAGE = "access.manage"  # identities, credentials, consent, enrollment, gates
    ACCESS_DECIDE = "access.decide"  # terminals (API tokens): ask for access decisions
    ACCESS_ADMIT = "access.admit"  # guards: admit a person by hand, with a reason
    ACCESS_LOG_READ = "access.log_read"  # who passed where (every look-up audited)
    VISITORS_MANAGE = "visitors.manage"  # register visitors (residents: their own)
    VEHICLES_READ = "vehicles.read"  # vehicle log, parking occupancy, guard queue
    VEHICLES_MANAGE = "vehicles.manage"  # vehicles, permits, gates, plate watch list
    VEHICLES_CONFIRM = "vehicles.confirm"  # guards: confirm or reject a low-confidence read
    SAFETY_READ = "safety.read"  # cameras, video events, care board
    SAFETY_MANAGE = "safety.manage"  # cameras, zones, lines, analytics settings
    WATCHLIST_READ = "watchlist.read"  # key-person / plate watch list and its matches (audited)
    WATCHLIST_MANAGE = "watchlist.manage"  # add, authorise, end watch-list entries
    CARE_READ = "care.read"  # elderly-care board and alarms (grid workers: own grid)
    CARE_MANAGE = "care.manage"  # enrol people in care, consent, thresholds
    WASTE_READ = "waste.read"  # stations, bins, deposits, statistics
    WASTE_MANAGE = "waste.manage"  # stations, bins, hours, voice texts, inspection
    WASTE_DEPOSIT = "waste.deposit"  # terminals (API tokens): report deposits


_ALL = frozenset(Perm)

ROLE_PERMISSIONS: dict[Role, frozenset[Perm]] = {
    Role.PLATFORM_ADMIN: _ALL,
    Role.STAFF: frozenset(
        {
            Perm.VEHICLES_READ,
            Perm.VEHICLES_MANAGE,
            Perm.VEHICLES_CONFIRM,
            Perm.SAFETY_READ,
            Perm.SAFETY_MANAGE,
            Perm.WATCHLIST_READ,
            Perm.WATCHLIST_MANAGE,
            Perm.CARE_READ,
            Perm.CARE_MANAGE,
            Perm.WASTE_READ,
            Perm.WASTE_MANAGE,
            Perm.ACCESS_READ,
            Perm.ACCESS_MANAGE,
            Perm.ACCESS_ADMIT,
            Perm.ACCESS_LOG_READ,
            Perm.VISITORS_MANAGE,
            Perm.COMMUNITY_READ,
            Perm.PEOPLE_READ,
            Perm.PEOPLE_WRITE,
            Perm.PEOPLE_IMPORT,
            Perm.PEOPLE_SENSITIVE,
            Perm.GRIDS_MANAGE,
            Perm.USERS_MANAGE,
            Perm.TOKENS_MANAGE,
            Perm.AUDIT_READ,
            Perm.EVENTS_READ,
            Perm.SELF,
            Perm.WORKORDERS_READ,
            Perm.WORKORDERS_HANDLE,
            Perm.WORKORDERS_MANAGE,
            Perm.IOT_READ,
            Perm.ALARMS_HANDLE,
            Perm.CONSULTATION_READ,
            Perm.CONSULTATION_MANAGE,
        }
    ),
    # grid workers see residents of the buildings in their own grids only
    Role.GRID_WORKER: frozenset(
        {
            Perm.CARE_READ,
            Perm.WASTE_READ,
            Perm.CONSULTATION_READ,
            Perm.COMMUNITY_READ,
            Perm.PEOPLE_READ,
            Perm.PEOPLE_SENSITIVE,
            Perm.EVENTS_READ,
            Perm.SELF,
            Perm.WORKORDERS_READ,
            Perm.WORKORDERS_HANDLE,
        }
    ),
    Role.PROPERTY_MANAGER: frozenset(
        {
            Perm.VEHICLES_READ,
            Perm.VEHICLES_MANAGE,
            Perm.VEHICLES_CONFIRM,
            Perm.SAFETY_READ,
            Perm.WASTE_READ,
            Perm.WASTE_MANAGE,
            Perm.WASTE_DEPOSIT,
            Perm.ACCESS_READ,
            Perm.ACCESS_MANAGE,
            Perm.ACCESS_ADMIT,
            Perm.ACCESS_LOG_READ,
            Perm.VISITORS_MANAGE,
            Perm.CONSULTATION_READ,
            Perm.COMMUNITY_READ,
            Perm.PEOPLE_READ,
            Perm.EVENTS_READ,
            Perm.TOKENS_MANAGE,
            Perm.SELF,
            Perm.WORKORDERS_READ,
            Perm.WORKORDERS_HANDLE,
            Perm.WORKORDERS_MANAGE,
            Perm.IOT_READ,
            Perm.IOT_MANAGE,
            Perm.ALARMS_HANDLE,
            Perm.DEVICES_INGEST,
            Perm.DEVICES_COMMAND,
        }
    ),
    Role.SECURITY_GUARD: frozenset(
        {
            Perm.VEHICLES_READ,
            Perm.VEHICLES_CONFIRM,
            Perm.SAFETY_READ,
            Perm.WATCHLIST_READ,
            Perm.ACCESS_READ,
            Perm.ACCESS_ADMIT,
            Perm.ACCESS_LOG_READ,
            Perm.VISITORS_MANAGE,
            Perm.CONSULTATION_READ,
            Perm.COMMUNITY_READ,
            Perm.PEOPLE_READ,
            Perm.EVENTS_READ,
            Perm.SELF,
            Perm.WORKORDERS_READ,
            Perm.WORKORDERS_HANDLE,
            Perm.IOT_READ,
            Perm.ALARMS_HANDLE,
        }
    ),
    Role.PROFESSIONAL: frozenset({Perm.COMMUNITY_READ, Perm.SELF, Perm.CONSULTATION_READ}),
    Role.RESIDENT: frozenset(
        {Perm.COMMUNITY_READ, Perm.SELF, Perm.CONSULTATION_READ, Perm.VISITORS_MANAGE}
    ),
}

#: roles whose view of residents is limited to their own grids
GRID_SCOPED_ROLES = frozenset({Role.GRID_WORKER})


def permissions_for(roles: set[Role]) -> frozenset[Perm]:
    perms: set[Perm] = set()
    for r in roles:
        perms |= ROLE_PERMISSIONS[r]
    return frozenset(perms)
