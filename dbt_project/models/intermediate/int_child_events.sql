-- The events that count for each child at the prediction date D: the child's own and those of everyone in the
-- child's household at D, whenever they happened before D. Point in time:
--   event_date < D                                     it had happened,
--   arrived_on <= D                                    its extract had landed (month M lands at the end of M),
--   superseded_on is null or superseded_on > D         and it is the latest version that had landed by D.
-- Windows (12m, 24m) are on recent_on: the event date, or for a benefit claim (sent at its start and re-sent at
-- each change) the month of each later extract that re-sent it, since the claim was running then.
-- A housing status lasts [event_date, status_until): housing re-sends a record only when its status changes, so a
-- status holds until the record's next status that counts at D (had happened and had arrived), else until D.
--
-- Incremental by row hash (macros/row_hash_incremental.sql): a child at a prediction date is rebuilt whole when
-- any of its rows changed (an event, a version, a member or the household). Rows are distinct: one per child,
-- member and record version.
{{ config(materialized='incremental', incremental_strategy='replace_records',
          unique_key=['person_id', 'prediction_date'], on_schema_change='sync_all_columns') }}
with counted as (
    select
        members.person_id,
        members.prediction_date,
        members.household_id,
        members.member_id,
        members.relation,
        events.source,
        events.event_key,
        events.record_id,
        events.group_ref,
        events.role,
        events.event_date,
        events.extract_month,
        events.arrived_on,
        events.ward,
        events.lsoa,
        events.recent_on >= members.prediction_date - interval 12 month as within_12m,
        events.recent_on >= members.prediction_date - interval 24 month as within_24m,
        events.is_police_incident,
        events.is_domestic_abuse,
        events.is_social_care_referral,
        events.is_child_in_need,
        events.is_child_protection,
        events.is_youth_offence,
        events.is_drug_alcohol_treatment,
        events.is_housing_register,
        events.is_temporary_accommodation,
        events.is_overcrowded,
        events.is_benefit_claim
    from {{ ref('int_child_household_members') }} as members
    inner join {{ ref('int_person_events') }} as events
        on events.person_id = members.member_id
        and events.event_date < members.prediction_date
        and events.arrived_on <= members.prediction_date
        and (events.superseded_on is null or events.superseded_on > members.prediction_date)
),

child_events as (
    select
        *,
        -- ties (two statuses of a record on one day) broken by extract and key, so that builds agree
        case when source = 'housing' then coalesce(
            lead(event_date) over (partition by person_id, prediction_date, source, record_id
                                   order by event_date, extract_month, event_key),
            prediction_date
        ) end as status_until
    from counted
),

{{ row_hash_incremental('child_events') }}
