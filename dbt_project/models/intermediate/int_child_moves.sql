-- Household changes of each child in the 24 months before the prediction date D: spells that started in
-- [D - 24 months, D), other than the child's first known spell (joining a first household is not a move).
with spells as (
    select
        person_id,
        household_id,
        valid_from,
        row_number() over (partition by person_id order by valid_from, household_id) as spell_number
    from {{ ref('stg_household_membership') }}
)

select
    children.person_id,
    children.prediction_date,
    cast(count(spells.person_id) as integer) as moves_24m
from {{ ref('int_child_prediction_dates') }} as children
left join spells
    on spells.person_id = children.person_id
    and spells.spell_number > 1
    and spells.valid_from >= children.prediction_date - interval 24 month
    and spells.valid_from < children.prediction_date
group by all
