-- features.child_features: one row per child per prediction date (the third birthday), with point-in-time
-- features from the child and their household at that date, and the EYFSP outcome (not a feature).
with children as (
    select * from {{ ref('int_child_prediction_dates') }}
),

households as (
    select
        person_id,
        prediction_date,
        any_value(household_id) as household_id,
        cast(count(distinct member_id) as integer) as members
    from {{ ref('int_child_household_members') }}
    group by all
),

events as (
    select
        person_id,
        prediction_date,
        count(distinct group_ref) filter (where is_police_incident and within_12m) as police_incidents_12m,
        count(distinct group_ref) filter (where is_police_incident and within_24m) as police_incidents_24m,
        count(distinct group_ref) filter (where is_domestic_abuse and within_12m) as domestic_abuse_12m,
        count(distinct group_ref) filter (where is_domestic_abuse and within_24m) as domestic_abuse_24m,
        -- a referral by whom and when: one re-sent under a new key (2% of agency rows come twice) is one referral
        count(distinct (member_id, event_date)) filter (where is_social_care_referral and within_24m)
            as social_care_referrals_24m,
        bool_or(is_child_in_need and relation in ('child', 'sibling')) as child_in_need_ever,
        bool_or(is_child_protection and relation in ('child', 'sibling')) as child_protection_ever,
        count(distinct member_id) filter (where is_youth_offence and relation = 'adult') as parent_youth_offending,
        count(distinct member_id) filter (where is_youth_offence and relation = 'sibling') as sibling_youth_offending,
        bool_or(is_drug_alcohol_treatment and relation = 'adult' and within_24m) as parent_drug_alcohol_24m,
        -- a stay, not a day: in TA at any time in [D - 24 months, D) (status_until: see int_child_events)
        bool_or(is_temporary_accommodation and status_until > prediction_date - interval 24 month)
            as temporary_accommodation_24m,
        -- on the housing register at some time in [D - 24 months, D) (a 'Registered' or TA status lasts until the
        -- next: status_until), or a status of the register dated in them; overcrowded likewise
        bool_or(source = 'housing' and (within_24m
                or (is_housing_register and status_until > prediction_date - interval 24 month)))
            as housing_register_24m,
        bool_or(is_overcrowded and (within_24m
                or (is_housing_register and status_until > prediction_date - interval 24 month)))
            as overcrowded_24m,
        bool_or(is_benefit_claim and within_24m) as benefit_claim_24m,
        -- where the child lived: the latest ward / LSOA on the child's own records, else on the household's;
        -- records of the same date by (source, record_id, extract_month), not by the order int_child_events'
        -- rows were written in (an incremental build writes them in another order than a full build)
        coalesce(
            arg_max(ward, (event_date, source, record_id, extract_month))
                filter (where ward is not null and relation = 'child'),
            arg_max(ward, (event_date, source, record_id, extract_month))
                filter (where ward is not null)
        ) as ward,
        coalesce(
            arg_max(lsoa, (event_date, source, record_id, extract_month))
                filter (where lsoa is not null and relation = 'child'),
            arg_max(lsoa, (event_date, source, record_id, extract_month))
                filter (where lsoa is not null)
        ) as lsoa
    from {{ ref('int_child_events') }}
    group by all
)

select
    children.person_id,
    children.prediction_date,
    children.birth_year,
    children.birth_month,
    households.household_id,
    children.history_months,

    children.sex,
    children.birth_month between 5 and 8 as summer_born,
    events.ward,
    events.lsoa,
    case when households.household_id is not null then households.members end as household_size,
    cast(coalesce(events.police_incidents_12m, 0) as integer) as police_incidents_12m,
    cast(coalesce(events.police_incidents_24m, 0) as integer) as police_incidents_24m,
    cast(coalesce(events.domestic_abuse_12m, 0) as integer) as domestic_abuse_12m,
    cast(coalesce(events.domestic_abuse_24m, 0) as integer) as domestic_abuse_24m,
    cast(coalesce(events.social_care_referrals_24m, 0) as integer) as social_care_referrals_24m,
    coalesce(events.child_in_need_ever, false) as child_in_need_ever,
    coalesce(events.child_protection_ever, false) as child_protection_ever,
    cast(coalesce(events.parent_youth_offending, 0) as integer) as parent_youth_offending,
    cast(coalesce(events.sibling_youth_offending, 0) as integer) as sibling_youth_offending,
    coalesce(events.parent_drug_alcohol_24m, false) as parent_drug_alcohol_24m,
    coalesce(events.temporary_accommodation_24m, false) as temporary_accommodation_24m,
    coalesce(events.overcrowded_24m, false) as overcrowded_24m,
    coalesce(events.housing_register_24m, false) as housing_register_24m,
    coalesce(events.benefit_claim_24m, false) as benefit_claim_24m,
    moves.moves_24m,

    outcome.assessment_year,
    outcome.not_gld,
    outcome.fsm,
    outcome.eal,
    outcome.sen,
    outcome.ethnicity_group
from children
left join households using (person_id, prediction_date)
left join events using (person_id, prediction_date)
left join {{ ref('int_child_moves') }} as moves using (person_id, prediction_date)
left join {{ ref('int_child_assessments') }} as outcome using (person_id)
-- A stable row order: the same features must train the same model, and training (cross-fitting by position)
-- reads the table in the order it was written.
order by person_id, prediction_date
