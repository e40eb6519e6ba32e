-- Who lived in which household, when: valid_from inclusive, valid_to exclusive (null: still there).
select
    household_id,
    person_id,
    cast(valid_from as date) as valid_from,
    cast(valid_to as date) as valid_to
from {{ source('linked', 'household_membership') }}
