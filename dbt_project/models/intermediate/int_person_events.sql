{#-
  Events per person over time: every version of every linked record, one row each, with what it says as flags.
  Point-in-time columns (arrived_on, superseded_on) travel with each row; consumers filter on them.

  Incremental by row hash (macros/row_hash_incremental.sql): a record (source, record_id) is rebuilt whole,
  every version, when any of its rows changed: its staging rows (a later version changes superseded_on), its
  person (a relink), or it is new or gone. Rows are distinct (unique by source, record_id, extract_month). At
  1.5M residents rebuilding every record costs more than a full build: after an edit of its SQL,
  `--full-refresh --select int_person_events+` is the cheaper way.
-#}
{{ config(materialized='incremental', incremental_strategy='replace_records', unique_key=['source', 'record_id'],
          on_schema_change='sync_all_columns') }}
with records as (
    select
        source, event_key, record_id, group_ref, role, extract_month, arrived_on, superseded_on, event_date,
        ward, lsoa,
        true as is_police_incident,
        coalesce(domestic_abuse, false) or incident_type = 'Domestic abuse' as is_domestic_abuse,
        false as is_social_care_referral, false as is_child_in_need, false as is_child_protection,
        false as is_youth_offence, false as is_drug_alcohol_treatment,
        false as is_housing_register, false as is_temporary_accommodation, false as is_overcrowded,
        false as is_benefit_claim
    from {{ ref('stg_police_incidents') }}

    union all
    select
        source, event_key, record_id, group_ref, role, extract_month, arrived_on, superseded_on, event_date,
        ward, lsoa,
        false, false,
        category = 'Referral', category = 'Child in need', category = 'Child protection plan',
        false, false, false, false, false, false
    from {{ ref('stg_social_care') }}

    union all
    select
        source, event_key, record_id, group_ref, role, extract_month, arrived_on, superseded_on, event_date,
        ward, lsoa,
        false, false, false, false, false,
        true, false, false, false, false, false
    from {{ ref('stg_youth_offending') }}

    union all
    select
        source, event_key, record_id, group_ref, role, extract_month, arrived_on, superseded_on, event_date,
        ward, lsoa,
        false, false, false, false, false, false,
        true, false, false, false, false
    from {{ ref('stg_drugs_alcohol') }}

    union all
    select
        source, event_key, record_id, group_ref, role, extract_month, arrived_on, superseded_on, event_date,
        ward, lsoa,
        false, false, false, false, false, false, false,
        status in ('Registered', 'Temporary accommodation'),  -- on the register from this status on
        status = 'Temporary accommodation',
        coalesce(bedrooms_needed > bedrooms_current, false),
        false
    from {{ ref('stg_housing') }}

    union all
    select
        source, event_key, record_id, group_ref, role, extract_month, arrived_on, superseded_on, event_date,
        ward, lsoa,
        false, false, false, false, false, false, false, false, false, false,
        true
    from {{ ref('stg_benefits') }}

    union all
    -- the EYFSP return carries no risk event, but says where the child lived
    select
        source, event_key, record_id, group_ref, role, extract_month, arrived_on, superseded_on, event_date,
        ward, lsoa,
        false, false, false, false, false, false, false, false, false, false, false
    from {{ ref('stg_school_readiness') }}
),

events as (
    select
        link.person_id,
        records.*,
        -- how recent the record is, for the 12m / 24m windows: the event date, except that a benefit claim
        -- (sent when it starts, re-sent at each change) is known to be running in the month of each extract that
        -- re-sent it. Not in that of the extract that first sent it: the first extract of all (2013-01) carried
        -- every claim then running, and its month would make each of them recent for prediction dates up to
        -- 2015 and for none after (the flag of 20% of the 2016 cohort, 7% of the 2018 one)
        case
            when records.source = 'benefits'
                and records.extract_month
                    > min(records.extract_month) over (partition by records.source, records.record_id)
                then greatest(records.event_date, cast(records.extract_month || '-01' as date))
            else records.event_date
        end as recent_on
    from records
    inner join {{ ref('stg_person_link') }} as link
        on link.source = records.source and link.record_id = records.record_id
),

{{ row_hash_incremental('events') }}
