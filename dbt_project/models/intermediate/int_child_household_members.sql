-- Each child's household at the prediction date D and who lived in it at D (the child included):
-- relation 'child' (the child), 'adult' (18 or over at D, or birth unknown), 'sibling' (any other member under 18).
-- A child with no known household at D is their own only member (household_id null).
--
-- Incremental by row hash (macros/row_hash_incremental.sql): a child at a prediction date is rebuilt whole when
-- any of its rows changed (a member, the household or a birth date). Rows are distinct (unique by person_id,
-- prediction_date, member_id).
{{ config(materialized='incremental', incremental_strategy='replace_records',
          unique_key=['person_id', 'prediction_date'], on_schema_change='sync_all_columns') }}
with households as (
    select
        children.person_id,
        children.prediction_date,
        spells.household_id
    from {{ ref('int_child_prediction_dates') }} as children
    inner join {{ ref('stg_household_membership') }} as spells
        on spells.person_id = children.person_id
        and spells.valid_from <= children.prediction_date
        and (spells.valid_to is null or spells.valid_to > children.prediction_date)
    qualify row_number() over (
        partition by children.person_id, children.prediction_date order by spells.valid_from desc, spells.household_id
    ) = 1
),

members as (
    select
        households.person_id,
        households.prediction_date,
        households.household_id,
        spells.person_id as member_id
    from households
    inner join {{ ref('stg_household_membership') }} as spells
        on spells.household_id = households.household_id
        and spells.valid_from <= households.prediction_date
        and (spells.valid_to is null or spells.valid_to > households.prediction_date)
    union
    select person_id, prediction_date, household_id, person_id from households
    union
    select children.person_id, children.prediction_date, null, children.person_id
    from {{ ref('int_child_prediction_dates') }} as children
    anti join households using (person_id, prediction_date)
),

household_members as (
    select
        members.person_id,
        members.prediction_date,
        members.household_id,
        members.member_id,
        case
            when members.member_id = members.person_id then 'child'
            when person.born_on is null or person.born_on <= members.prediction_date - interval 18 year then 'adult'
            else 'sibling'
        end as relation
    from members
    left join {{ ref('stg_person') }} as person on person.person_id = members.member_id
),

{{ row_hash_incremental('household_members') }}
